"""Training curves (mmmoma.apis.curves) from synthetic and real
``scalars.json`` files, and TensorBoard logging by one config line."""
import json
from pathlib import Path

import pytest
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.apis.curves import (Curve, iters_per_epoch, main, plot_curves,
                                read_scalars)

ROOT = Path(__file__).resolve().parents[2]
# The README's line: every MMEngine vis backend is chosen this way.
TENSORBOARD_LINE = (
    "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
    "dict(type='TensorboardVisBackend')])")


def _write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def _train_line(epoch, step, lr, mae, moco):
    return dict(lr=lr, loss=mae + moco, loss_mae=mae, loss_mocov3=moco,
                time=0.1, epoch=epoch, iter=step, step=step)


@pytest.fixture
def synthetic(tmp_path) -> Path:
    """A work dir: 2 epochs of 5 iterations, logged every 2 within each
    epoch (steps 2, 4, 7, 9), k-NN after each epoch (steps 5, 10); then a
    resumed session that logs step 9 again and goes on to epoch 3."""
    work = tmp_path / 'work'
    _write(work / '20260101_000000/vis_data/scalars.json', [
        _train_line(1, 2, 0.1, 0.8, 0.4),
        _train_line(1, 4, 0.2, 0.6, 0.3),
        {'knn/top1': 40.0, 'knn/top5': 90.0, 'step': 5},
        _train_line(2, 7, 0.3, 0.4, 0.2),
        _train_line(2, 9, 0.4, 0.3, 0.1),
    ])
    _write(work / '20260101_010000/vis_data/scalars.json', [
        _train_line(2, 9, 0.4, 0.25, 0.1),
        {'knn/top1': 50.0, 'knn/top5': 95.0, 'step': 10},
        _train_line(3, 12, 0.5, 0.2, 0.05),
    ])
    return work


def test_synthetic_run(synthetic, tmp_path):
    out = tmp_path / 'curves.png'
    curves = plot_curves(str(synthetic), str(out))
    assert list(curves) == ['loss', 'loss_mae', 'loss_mocov3', 'lr',
                            'knn/top1']
    assert curves['loss_mae'].steps == [2, 4, 7, 9, 12]
    # the resumed session's value at step 9 replaces the first one
    assert curves['loss_mae'].values == [0.8, 0.6, 0.4, 0.25, 0.2]
    assert curves['loss_mocov3'].values == [0.4, 0.3, 0.2, 0.1, 0.05]
    assert curves['lr'].values == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert curves['knn/top1'] == ([5, 10], [40.0, 50.0])
    assert iters_per_epoch(read_scalars(
        [str(p) for p in sorted(synthetic.glob('*/vis_data/scalars.json'))
         ])) == 5
    with Image.open(out) as img:
        assert img.format == 'PNG' and img.size[1] > img.size[0]


def test_chosen_keys_and_a_single_file(synthetic, tmp_path):
    scalars = next(synthetic.glob('20260101_000000/vis_data/scalars.json'))
    curves = main([str(scalars), '--keys', 'knn/top5', 'time'])
    assert curves['knn/top5'] == ([5], [90.0])
    assert curves['time'].steps == [2, 4, 7, 9]
    assert (scalars.parent / 'curves.png').is_file()  # next to the file
    with pytest.raises(ValueError, match=r"keys=\['loss_dino'\].*allowed: "
                       r"\[.*'loss_mae'"):
        plot_curves(str(synthetic), str(tmp_path / 'x.png'), ['loss_dino'])


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='path=.*neither'):
        plot_curves(str(tmp_path), str(tmp_path / 'x.png'))
    bad = tmp_path / 'scalars.json'
    bad.write_text('{"lr": 0.1}\n')
    with pytest.raises(ValueError, match='line 1 of .* "step"'):
        plot_curves(str(bad), str(tmp_path / 'x.png'))


def test_epochs_unknown_when_epoch_lengths_disagree():
    # first lines of epochs 1, 2, 3 at steps 2, 4, 9: gaps 2 and 5
    epochs = Curve([2, 4, 9], [1.0, 2.0, 3.0])
    assert iters_per_epoch({'epoch': epochs}) is None
    assert iters_per_epoch({}) is None


@pytest.fixture(scope='module')
def tiny_run(tiny_moma_run, class_folders, tmp_path_factory):
    """2 iterations of the tiny MOMA config with the k-NN monitor, through
    a config that inherits it and adds the README's TensorBoard line."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    root = tmp_path_factory.mktemp('tiny_curves')
    config = root / 'moma_tensorboard.py'
    base = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
    config.write_text(f'_base_ = {str(base)!r}\n{TENSORBOARD_LINE}\n')
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(
        dict(o.split('=', 1) for o in tiny_moma_run['options']))
    loader = dict(
        batch_size=8,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='CustomDataset',
            data_root=str(class_folders),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='PackInputs')]))
    cfg.custom_hooks = [
        dict(type='KNNEvalHook', train_dataloader=loader,
             val_dataloader=loader, k=3, interval=1)
    ] + cfg.custom_hooks
    cfg.train_dataloader.dataset.indices = 8  # batch 4: 2 iterations
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(root / 'work')
    DefaultScope.get_instance('tiny_curves', scope_name='mmpretrain')
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    return dict(
        work=Path(cfg.work_dir),
        loss_mae=hub.get_scalar('train/loss_mae').data[0].tolist(),
        loss_mocov3=hub.get_scalar('train/loss_mocov3').data[0].tolist(),
        knn=hub.get_scalar('knn/top1').current())


def test_curves_of_a_real_run(tiny_run, tmp_path):
    out = tmp_path / 'curves.png'
    curves = plot_curves(str(tiny_run['work']), str(out))
    assert set(curves) == {'loss', 'loss_mae', 'loss_mocov3', 'lr',
                           'knn/top1'}
    # logged every iteration, as MMEngine's LogProcessor logs: the mean over
    # the last window_size (10, MMPretrain's runtime) iterations
    for name in ('loss_mae', 'loss_mocov3'):
        raw = tiny_run[name]  # each iteration's own loss
        assert curves[name].steps == [1, 2]
        assert curves[name].values == pytest.approx(
            [raw[0], (raw[0] + raw[1]) / 2])
    assert curves['lr'].values == pytest.approx([1e-3, 1e-3])  # constant
    assert curves['knn/top1'] == ([2], [pytest.approx(tiny_run['knn'])])
    assert out.stat().st_size > 1000


def test_teacher_losses_land_in_tensorboard(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator)
    events = list(tiny_run['work'].glob('*/vis_data/events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    for name in ('loss_mae', 'loss_mocov3'):
        logged = acc.Scalars(name)
        assert [e.step for e in logged] == [1, 2]
        # TensorBoard stores float32
        raw = tiny_run[name]
        assert [e.value for e in logged] == pytest.approx(
            [raw[0], (raw[0] + raw[1]) / 2], rel=1e-6)
    assert acc.Scalars('knn/top1')[0].value == pytest.approx(
        tiny_run['knn'], rel=1e-6)
