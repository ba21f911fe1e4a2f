"""``--resume`` reads weights only, and refuses a checkpoint of another model.

A file given to ``--resume`` is read with ``weights_only=True`` through the
allowlist of Runner types (:mod:`mmmoma.checkpoint_safety`): a real resume
of the tiny configs restores the optimizer and the message hub, a crafted
pickle is refused before its code runs. A checkpoint of another algorithm
is refused before anything is loaded, saying what differs, and the work
dir's checkpoints stay as they were.
"""
import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop
from reliability_utils import CONFIG, ROOT, run, train_cmd

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import launch

MAE_CONFIG = ROOT / 'tests/data/configs/mae_tiny_cpu.py'
ITERS_PER_EPOCH = 4  # 16 images, batch 4


class Payload:
    """Unpickles by running code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()', )


def digests(work_dir: Path) -> dict:
    """SHA-256 of every checkpoint and of ``last_checkpoint``."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(work_dir.iterdir())
        if p.suffix == '.pth' or p.name == 'last_checkpoint'
    }


@pytest.fixture(scope='module')
def runs(tiny_moma_run, tmp_path_factory) -> dict:
    """One epoch of the tiny MOMA and of the tiny MAE config, each in its
    own work dir."""
    root = tmp_path_factory.mktemp('resume_checks')
    out = {}
    for name, config, options in (
        ('moma', CONFIG, tiny_moma_run['options']),
        ('mae', MAE_CONFIG,
         [f'train_dataloader.dataset.data_root={tiny_moma_run["images"]}'])):
        work_dir = root / name
        proc = run(
            train_cmd(work_dir, options + ['train_cfg.max_epochs=1'],
                      config=config))
        assert proc.returncode == 0, proc.stdout[-3000:]
        out[name] = dict(work_dir=work_dir, options=options,
                         ckpt=work_dir / 'epoch_1.pth')
    return out


def test_resume_of_the_own_checkpoint_restores_optimizer_and_hub(
        runs, tmp_path):
    moma = runs['moma']
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(moma['ckpt'].read_bytes())
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    proc = run(
        train_cmd(work_dir, moma['options'] + ['train_cfg.max_epochs=2'],
                  '--resume'))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in proc.stdout
    # The resumed run's checkpoint is read as resume reads it.
    last = torch.load(work_dir / 'epoch_2.pth', weights_only=True)
    # AdamW counts its steps per parameter: 4 before the resume, 4 after.
    steps = {float(s['step']) for s in last['optimizer']['state'].values()}
    assert steps == {2.0 * ITERS_PER_EPOCH}
    # The loss history of epoch 1 came back with the message hub.
    history = last['message_hub']['log_scalars']['train/loss']
    assert len(history.data[0]) == 2 * ITERS_PER_EPOCH


@pytest.mark.parametrize('how', ['given', 'latest'])
def test_resume_of_another_model_is_refused_before_loading(
        runs, tmp_path, how):
    moma, mae = runs['moma'], runs['mae']
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'epoch_1.pth').write_bytes(moma['ckpt'].read_bytes())
    foreign = work_dir / 'mae_epoch_1.pth'
    foreign.write_bytes(mae['ckpt'].read_bytes())
    if how == 'latest':  # --resume without a path picks it up
        (work_dir / 'last_checkpoint').write_text(str(foreign))
        resume = ['--resume']
    else:
        (work_dir / 'last_checkpoint').write_text(str(work_dir /
                                                      'epoch_1.pth'))
        resume = ['--resume', str(foreign)]
    before = digests(work_dir)
    proc = run(
        train_cmd(work_dir, moma['options'] + ['train_cfg.max_epochs=2'],
                  *resume))
    assert proc.returncode != 0
    out = proc.stdout
    assert (f'--resume {str(foreign)!r} does not match the config '
            f'{str(CONFIG)!r}; nothing was loaded.') in out, out[-3000:]
    assert ("model type: checkpoint {'model': 'MAE', 'backbone': 'MAEViT'}, "
            "config {'model': 'MomaAlgorithm', 'backbone': "
            "'mmpretrain.MAEViT'}") in out
    assert 'missing (42): mask_seed; mask_step; necks.mocov3.' in out
    assert 'unexpected (20): neck.mask_token; neck.decoder_pos_embed' in out
    assert 'Allowed: a checkpoint that a Runner of this config wrote' in out
    # MMEngine's own failure, after a partial load, is not reached.
    assert 'different number of parameter groups' not in out
    assert 'resumed epoch' not in out and 'Epoch(train)' not in out
    assert digests(work_dir) == before


def test_mis_shaped_weights_are_listed(runs, tmp_path):
    """Same algorithm, another architecture: the shapes are named."""
    moma = runs['moma']
    work_dir = tmp_path / 'work'
    wide = [
        f'model.backbone.arch.{k}={v}' for k, v in (('embed_dims', 48),
                                                     ('feedforward_channels',
                                                      96))
    ] + ['model.neck.decoder_embed_dims=48']
    proc = run(
        train_cmd(work_dir, moma['options'] + wide + [
            'train_cfg.max_epochs=2', f'load_from={moma["ckpt"]}',
            'resume=True'
        ]))
    assert proc.returncode != 0
    assert (f'--resume {str(moma["ckpt"])!r} does not match the config'
            in proc.stdout), proc.stdout[-3000:]
    assert ('mis-shaped (' in proc.stdout and
            'backbone.cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)'
            in proc.stdout)
    assert 'Epoch(train)' not in proc.stdout


def crafted_runner_checkpoint(source: Path, path: Path, marker: Path) -> Path:
    """A real Runner checkpoint with a code-running object in its meta."""
    checkpoint = torch.load(source, weights_only=True)
    checkpoint['meta']['hook_msgs'] = Payload(marker)
    torch.save(checkpoint, path)
    return path


@pytest.fixture
def no_training(monkeypatch):
    iterations = []
    monkeypatch.setattr(EpochBasedTrainLoop, 'run_iter',
                        lambda self, *args: iterations.append(args))
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    return iterations


def resume_in_process(tmp_path: Path, path: Path, runs: dict) -> None:
    """What ``tools/train.py CONFIG --resume PATH`` runs."""
    launch.train([
        str(CONFIG), '--work-dir',
        str(tmp_path / 'work'), '--resume',
        str(path), '--cfg-options', *runs['moma']['options']
    ])


def test_crafted_pickle_given_to_resume_is_refused(runs, tmp_path,
                                                   no_training):
    marker = tmp_path / 'marker'
    path = crafted_runner_checkpoint(runs['moma']['ckpt'],
                                     tmp_path / 'epoch_1.pth', marker)
    with open(path, 'rb') as f:  # the payload is live
        assert b'exec' in f.read()
    with pytest.raises(SystemExit) as info:
        resume_in_process(tmp_path, path, runs)
    message = str(info.value)
    assert f'--resume={str(path)!r} holds pickled Python objects (exec)' in (
        message)
    assert 'weights_only=True' in message
    assert not marker.exists()
    assert not no_training


def test_runner_resume_itself_reads_weights_only(runs, tmp_path, monkeypatch,
                                                 no_training):
    """Without the check of tools/train.py, MMEngine's own resume load is
    weights-only too: the payload still does not run."""
    marker = tmp_path / 'marker'
    path = crafted_runner_checkpoint(runs['moma']['ckpt'],
                                     tmp_path / 'epoch_1.pth', marker)
    monkeypatch.setattr(launch, 'check_resume_checkpoint',
                        lambda runner, config: None)
    with pytest.raises(pickle.UnpicklingError, match='GLOBAL exec'):
        resume_in_process(tmp_path, path, runs)
    assert not marker.exists()
    assert not no_training
    # The control: the file does run code when fully unpickled.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_resume_of_a_bare_state_dict_is_refused(runs, tmp_path,
                                                no_training):
    path = tmp_path / 'student.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}}, path)
    with pytest.raises(SystemExit) as info:
        resume_in_process(tmp_path, path, runs)
    message = str(info.value)
    assert f'--resume {str(path)!r} is not a Runner checkpoint' in message
    assert "found ['state_dict']" in message and 'Allowed:' in message
    assert not no_training



def test_pure_python_config_types_match_their_recorded_names():
    """A pure-Python config's types are classes; the checkpoint's meta
    records them as dotted names. The model-type check must take them as
    equal, or it would refuse a run's own checkpoint."""
    from mmengine.config import Config
    config = ROOT / ('mmmoma/configs/demo/'
                     'moma_vit_mini_p4_moco_mae_1xb128_coslr_fmnist.py')
    cfg = Config.fromfile(str(config))
    assert isinstance(cfg.model['type'], type)
    recorded = launch._model_types(cfg.pretty_text)
    current = dict(model=cfg.model['type'],
                   backbone=cfg.model['backbone']['type'])
    assert {k: launch._short_type(v) for k, v in recorded.items()} == {
        k: launch._short_type(v) for k, v in current.items()
    } == dict(model='MomaAlgorithm', backbone='MAEViT')
