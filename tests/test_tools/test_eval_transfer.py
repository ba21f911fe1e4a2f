"""Transfer of a MOMA student: linear probe, UperNet, tools/test.py, tools.

One tiny MOMA pretraining run (a 4-block 32-d student) gives the checkpoint
that every test loads with ``prefix='backbone.'``, as a user does.
"""
import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.apis import extract_student, make_fmnist_scenes
from mmmoma.datasets.checks import check_data_roots
from mmmoma.datasets.fashion_mnist import IMAGE_MAGIC, LABEL_MAGIC, read_idx

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'tests/data/configs'
SEG_CONFIG = CONFIGS / 'seg_tiny_cpu.py'
LINEAR_CONFIG = CONFIGS / 'eval_linear_tiny_cpu.py'
FINETUNE_CONFIG = (ROOT / 'configs/moma/benchmarks/'
                   'vit-base-p16_moma-pre_8xb128-coslr-100e_in1k.py')
STUDENT = dict(
    embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
FMNIST = Path('/usr/share/datasets/fashion-mnist')
TEACHER = dict(
    embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def options(**kwargs) -> dict:
    return {k.replace('__', '.'): v for k, v in kwargs.items()}


def data_roots(root, keys=('train', 'val', 'test')) -> dict:
    return {f'{k}_dataloader.dataset.data_root': str(root) for k in keys}


def build(config: Path, scope: str, cfg_options: dict):
    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(cfg_options)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


@pytest.fixture(scope='module', autouse=True)
def one_thread_and_scope():
    """One intra-op thread (tiny models: faster than fighting over two); the
    default scope that each Runner sets is undone for later test modules."""
    threads = torch.get_num_threads()
    scopes = copy.copy(DefaultScope._instance_dict)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    DefaultScope._instance_dict = scopes


# ------------------------------------------------------------------ data
@pytest.fixture(scope='module')
def moma_ckpt(tmp_path_factory) -> Path:
    """A MOMA checkpoint of a 4-block student, saved by the Runner."""
    from mmpretrain.models import MoCoV3ViT, VisionTransformer
    root = tmp_path_factory.mktemp('moma')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        ramp = np.linspace(0, 1, 40)[:, None, None] * rng.uniform(0, 255, 3)
        img = ramp + rng.normal(0, 20, (40, 40, 3))
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(
            images / f'{i}.png')
    torch.manual_seed(0)
    teachers = {}
    for name, cls in (('mocov3', MoCoV3ViT), ('mae', VisionTransformer)):
        teacher = cls(arch=dict(TEACHER), img_size=32, patch_size=8,
                      out_type='raw')
        teacher.init_weights()
        teachers[name] = root / f'{name}.pth'
        torch.save({'state_dict': {f'backbone.{k}': v
                                   for k, v in teacher.state_dict().items()}},
                   teachers[name])
    cfg = Config.fromfile(str(CONFIGS / 'moma_tiny_cpu.py'))
    cfg.merge_from_dict({
        'model.teachers.mocov3.init_cfg.checkpoint': str(teachers['mocov3']),
        'model.teachers.mae.init_cfg.checkpoint': str(teachers['mae']),
        'model.backbone.arch.num_layers': 4,  # UperNet taps 4 blocks
        'train_dataloader.dataset.data_root': str(images),
        'train_cfg.max_epochs': 1,
    })
    cfg.work_dir = str(root / 'work')
    Runner.from_cfg(cfg).train()
    return root / 'work' / 'epoch_1.pth'


def student_of(ckpt: Path) -> dict:
    checkpoint = torch.load(ckpt, map_location='cpu', weights_only=True)
    return {k[len('backbone.'):]: v
            for k, v in checkpoint['state_dict'].items()
            if k.startswith('backbone.')}


@pytest.fixture(scope='module')
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('scenes') / 'fmnist_scenes'
    make_fmnist_scenes.main([str(out), '--num-train', '6', '--num-val',
                             '3', '--size', '64', '--seed', '0'])
    return out


@pytest.fixture(scope='module')
def imagenet_layout(tmp_path_factory) -> Path:
    """Fashion-MNIST photos in MMPretrain's ImageNet layout, 10 classes."""
    root = tmp_path_factory.mktemp('imagenet_layout')
    images = read_idx(str(FMNIST / 't10k-images-idx3-ubyte.gz'), IMAGE_MAGIC)
    labels = read_idx(str(FMNIST / 't10k-labels-idx1-ubyte.gz'), LABEL_MAGIC)
    (root / 'meta').mkdir()
    start = 0
    for split, num in (('train', 32), ('val', 16)):
        lines = []
        for i in range(start, start + num):
            rel = f'c{labels[i]}/{i:05d}.png'
            folder = root / split / f'c{labels[i]}'
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).convert('RGB').resize(
                (32, 32), Image.BILINEAR).save(root / split / rel)
            lines.append(f'{rel} {labels[i]}')
        (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')
        start += num
    return root


# ---------------------------------------------------------- linear probe
@pytest.mark.needs_fmnist
def test_linear_probe_trains_and_evaluates(moma_ckpt, imagenet_layout,
                                           tmp_path):
    cfg = Config.fromfile(str(LINEAR_CONFIG))
    cfg.merge_from_dict({
        'model.backbone.init_cfg.checkpoint': str(moma_ckpt),
        **data_roots(imagenet_layout, ('train', 'val'))
    })
    cfg.work_dir = str(tmp_path)
    check_data_roots(cfg, 'train')
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    # the frozen student is the MOMA one, loaded from the MOMA checkpoint
    student = student_of(moma_ckpt)
    backbone = model.backbone.state_dict()
    assert set(backbone) == set(student)
    for key, value in backbone.items():
        assert torch.equal(value, student[key]), key
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    assert 0 <= top1 <= 100
    assert (tmp_path / 'epoch_2.pth').is_file()


def test_finetune_config_trains_from_the_moma_student(
        moma_ckpt, imagenet_layout, tmp_path):
    """The ViT-B fine-tune recipe itself (RandAugment, Mixup/CutMix, layer
    decay) with the tiny student swapped in by cfg-options."""
    cfg = Config.fromfile(str(FINETUNE_CONFIG))
    loader = dict(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.merge_from_dict({
        'model.backbone.arch': dict(_delete_=True, **STUDENT),
        'model.backbone.patch_size': 8,  # the student's; 224px crops
        'model.backbone.init_cfg.checkpoint': str(moma_ckpt),
        'model.head.in_channels': 32,
        'model.head.num_classes': 10,
        'data_preprocessor.num_classes': 10,
        'train_dataloader': loader,
        'val_dataloader': loader,
        'optim_wrapper.clip_grad': None,
        'train_cfg.max_epochs': 1,
        **data_roots(imagenet_layout, ('train', 'val'))
    })
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    groups = runner.optim_wrapper.optimizer.param_groups
    assert {round(g['lr_scale'], 4) for g in groups} == {
        round(0.65**k, 4) for k in range(6)
    }
    # started from the MOMA student (a random init is ~0.02 away) and moved
    # by 4 warm-up steps of at most ~1e-4 each
    student = student_of(moma_ckpt)
    for key, value in model.backbone.state_dict().items():
        if key.startswith(('layers.', 'patch_embed.')):
            assert not torch.equal(value, student[key]), key
            assert torch.allclose(value, student[key], atol=2e-3), key
    top1 = runner.message_hub.get_scalar('val/accuracy/top1').current()
    assert 0 <= top1 <= 100


# ---------------------------------------------------------- segmentation
def test_seg_backbone_loads_the_moma_student_directly(moma_ckpt):
    model = build(SEG_CONFIG, 'mmseg',
                  {'model.backbone.init_cfg.checkpoint': str(moma_ckpt)})
    model.init_weights()
    student = student_of(moma_ckpt)
    own = model.backbone.state_dict()
    # ln1: the recipe has no final norm (final_norm=False)
    assert set(student) - set(own) == {'ln1.weight', 'ln1.bias'}
    assert set(own) <= set(student)
    for key, value in own.items():
        if key != 'pos_embed':
            assert torch.equal(value, student[key]), key
    # the 32px student's 4x4 position grid, resized to 64px crops (8x8)
    assert student['pos_embed'].shape == (1, 1 + 16, 32)
    assert own['pos_embed'].shape == (1, 1 + 64, 32)
    assert torch.equal(own['pos_embed'][:, 0], student['pos_embed'][:, 0])


@pytest.mark.needs_fmnist
def test_seg_trains_on_two_cpu_processes_and_tools_test_reports_miou(
        moma_ckpt, scenes, tmp_path, run_tool, free_port):
    """The user's commands: dist_train.sh (2 gloo processes, SyncBN swapped
    for BN), then tools/test.py on the Runner checkpoint it wrote."""
    work = tmp_path / 'work'
    env = {'OMP_NUM_THREADS': '1', 'PORT': str(free_port)}
    train = run_tool([
        'bash', ROOT / 'tools/dist_train.sh', SEG_CONFIG, 2, '--work-dir',
        work, '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={moma_ckpt}', *[
            f'{k}={v}' for k, v in data_roots(scenes, ('train', 'val')).items()
        ]
    ], cwd=tmp_path, extra_env=env).stdout
    # the layer-decay constructor built the groups: heads x1 ... stem x0.65^5
    assert re.search(
        r'LayerDecayOptimWrapperConstructor: 4 blocks at backbone\., rate '
        r'0\.65, \d+ groups; lr scale by depth 0: x0\.116, 1: x0\.179, '
        r'2: x0\.275, 3: x0\.423, 4: x0\.65, 5: x1', train), train[-3000:]
    assert 'MomaViT: student weights from' in train
    assert len(re.findall(r'Iter\(train\) \[\d/6\]', train)) == 6
    val = re.findall(r'Iter\(val\).*?mIoU: ([0-9.]+)', train)
    assert val, train[-3000:]
    ckpt = work / 'iter_6.pth'
    assert ckpt.is_file()

    proc = run_tool([
        sys.executable, ROOT / 'tools/test.py', SEG_CONFIG, ckpt,
        '--work-dir', tmp_path / 'test', '--cfg-options', *[
            f'{k}={v}' for k, v in data_roots(scenes, ('test', )).items()
        ]
    ], cwd=tmp_path, extra_env=env).stdout
    # the whole Runner checkpoint (message hub included) loaded, every key
    assert f'Load checkpoint from {ckpt}' in proc
    assert 'do not match exactly' not in proc
    found = re.findall(r'Iter\(test\).*?mIoU: ([0-9.]+)', proc)
    assert found, proc[-3000:]
    # Not equal to the val mIoU above: with BN in place of SyncBN each
    # process kept its own running statistics; the file holds rank 0's.
    assert 0 <= float(found[-1]) <= 100
    assert re.search(r'\|\s+IoU\s+\|', proc)  # MMSeg's per-class IoU table


# -------------------------------------------------------------- extract
def test_extract_student_round_trips(moma_ckpt, tmp_path, capsys):
    out = tmp_path / 'student.pth'
    report = extract_student.main([str(moma_ckpt), str(out)])
    printed = capsys.readouterr().out
    assert 'necks.mae.*' in printed and 'message_hub' in printed
    assert report['dropped_entries'] == [
        'message_hub', 'optimizer', 'param_schedulers'
    ]
    assert set(report['dropped_state']) == {
        'necks.mae', 'necks.mocov3', 'mask_seed', 'mask_step'
    }
    assert report['arch']['num_layers'] == 4
    # the MOMA checkpoint needs mmmoma's allowlist; the extracted one none
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint
        assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe(
            str(moma_ckpt))
        assert unsafe(str(out)) == []
        extracted = torch.load(out, weights_only=True)
    finally:
        torch.serialization.add_safe_globals(allowed)
    assert extracted['meta']['epoch'] == 1
    student = student_of(moma_ckpt)
    assert {k[len('backbone.'):]
            for k in extracted['state_dict']} == set(student)
    for key, value in student.items():
        assert torch.equal(extracted['state_dict']['backbone.' + key], value)
    # loading either file through the linear-probe config gives one model
    models = [
        build(LINEAR_CONFIG, 'mmpretrain',
              {'model.backbone.init_cfg.checkpoint': str(path)})
        for path in (moma_ckpt, out)
    ]
    for model in models:
        model.init_weights()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = [m.eval().extract_feat(images)[0] for m in models]
    assert torch.equal(feats[0], feats[1])
    with pytest.raises(SystemExit, match='exists; pass --overwrite'):
        extract_student.main([str(moma_ckpt), str(out)])


def test_extract_student_for_timm_gives_the_same_features(moma_ckpt,
                                                          tmp_path):
    """--format timm: timm.create_model loads the file strictly and its
    features equal the MMPretrain student's."""
    import timm
    from mmpretrain.models import MAEViT

    from mmmoma.models.utils import vit_forward_tokens
    out = tmp_path / 'student_timm.pth'
    report = extract_student.main(
        [str(moma_ckpt), str(out), '--format', 'timm', '--num-heads', '2'])
    kwargs = report['timm_kwargs']
    assert kwargs['embed_dim'] == 32 and kwargs['depth'] == 4
    model = timm.create_model(
        'vit_base_patch16_224', pretrained=True,
        pretrained_cfg_overlay=dict(file=str(out), num_classes=0), **kwargs)
    saved = torch.load(out, weights_only=True)
    assert set(saved) == set(model.state_dict())  # nothing left over
    student = MAEViT(arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                               feedforward_channels=64),
                     img_size=32, patch_size=8)
    student.load_state_dict(student_of(moma_ckpt), strict=True)
    student.eval()  # BaseBackbone.train() returns None: no chaining
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = vit_forward_tokens(student, images)
        got = model.forward_features(images)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(SystemExit, match=r"--num-heads=5: .* divisor of 32"):
        extract_student.main([str(moma_ckpt), str(tmp_path / 'x.pth'),
                              '--format', 'timm', '--num-heads', '5'])
    with pytest.raises(SystemExit, match=r"--format='onnx' is not supported"):
        extract_student.main([str(moma_ckpt), str(tmp_path / 'y.pth'),
                              '--format', 'onnx'])
    assert not (tmp_path / 'x.pth').exists()


# ------------------------------------------------------------ bad input
@pytest.fixture(scope='module')
def no_student_ckpt(moma_ckpt, tmp_path_factory) -> Path:
    """A Runner checkpoint of MOMA with its student removed (necks only)."""
    from mmmoma.checkpoint_safety import runner_checkpoint_load
    with runner_checkpoint_load():
        checkpoint = torch.load(moma_ckpt, weights_only=True)
    checkpoint['state_dict'] = {
        k: v for k, v in checkpoint['state_dict'].items()
        if not k.startswith('backbone.')
    }
    path = tmp_path_factory.mktemp('bad') / 'necks_only.pth'
    torch.save(checkpoint, path)
    return path


def test_student_checkpoint_without_backbone_weights(no_student_ckpt):
    model = build(LINEAR_CONFIG, 'mmpretrain',
                  {'model.backbone.init_cfg.checkpoint': str(no_student_ckpt)})
    with pytest.raises(ValueError) as err:
        model.init_weights()
    message = str(err.value)
    assert (f"model.backbone.init_cfg.checkpoint='{no_student_ckpt}'"
            in message)
    assert "prefix='backbone.'" in message and "'necks.'" in message
    assert 'Allowed: a checkpoint with the backbone' in message
    with pytest.raises(SystemExit, match=r"no weights under "
                       r"--prefix='backbone\.'.*Allowed"):
        extract_student.main(
            [str(no_student_ckpt), str(no_student_ckpt) + '2'])


def test_empty_or_mismatched_student_checkpoint(moma_ckpt):
    model = build(LINEAR_CONFIG, 'mmpretrain', {})
    with pytest.raises(ValueError, match=r"checkpoint='': no checkpoint given"
                       r'.*--cfg-options model\.backbone\.'
                       r'init_cfg\.checkpoint=PATH'):
        model.init_weights()
    wide = build(LINEAR_CONFIG, 'mmpretrain', {
        'model.backbone.init_cfg.checkpoint': str(moma_ckpt),
        'model.backbone.arch.embed_dims': 48,
        'model.neck.input_features': 48,
        'model.head.in_channels': 48
    })
    with pytest.raises(ValueError, match=r'holds another student \(4 '
                       r'blocks\) than this backbone \(4 blocks, 48-d\)'):
        wide.init_weights()


@pytest.mark.parametrize('indices', [[3, 5, 7, 11], [0, 1, 2, 4]])
def test_out_indices_beyond_the_student_depth(indices):
    with pytest.raises(ValueError) as err:
        build(SEG_CONFIG, 'mmseg', {'model.backbone.out_indices': indices})
    message = str(err.value)
    assert f'out_indices={indices}' in message
    assert 'has 4 blocks, so allowed indices are 0..3 (or -4..-1)' in message


def test_frozen_stages_beyond_the_student_depth():
    with pytest.raises(ValueError, match=r'frozen_stages=12 does not fit.*'
                       r'allowed: -1 \(train all\) to 4'):
        build(LINEAR_CONFIG, 'mmpretrain',
              {'model.backbone.frozen_stages': 12})


def test_missing_data_root_is_named(tmp_path):
    missing = tmp_path / 'ADEChallengeData2016'
    cfg = Config.fromfile(str(SEG_CONFIG))
    cfg.merge_from_dict(data_roots(missing))
    with pytest.raises(FileNotFoundError) as err:
        check_data_roots(cfg, 'train')
    message = str(err.value)
    assert (f"train_dataloader.dataset.data_root='{missing}': no such "
            'folder' in message)
    assert 'ADE20K layout' in message and 'make_fmnist_scenes.py' in message
    missing.mkdir()  # a folder, but not in the layout
    with pytest.raises(FileNotFoundError,
                       match=r'has no images/training/, '
                       r'annotations/training/'):
        check_data_roots(cfg, 'train')
    with pytest.raises(FileNotFoundError, match='test_dataloader.dataset'):
        check_data_roots(cfg, 'test')
    cfg = Config.fromfile(str(LINEAR_CONFIG))
    cfg.merge_from_dict(data_roots(tmp_path / 'imagenet'))
    with pytest.raises(FileNotFoundError, match="ImageNet layout"):
        check_data_roots(cfg, 'train')


# ------------------------------------------------------ scene generator
@pytest.mark.needs_fmnist
def test_scenes_are_deterministic_in_the_ade20k_layout(tmp_path):
    runs = {}
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        out = tmp_path / name
        make_fmnist_scenes.main([str(out), '--num-train', '3', '--num-val',
                                 '2', '--size', '48', '--seed', str(seed)])
        runs[name] = {p.relative_to(out): p.read_bytes()
                      for p in sorted(out.rglob('*.*'))
                      if p.suffix in ('.jpg', '.png')}
    assert sorted(map(str, runs['a'])) == [
        'annotations/training/ADE_train_00000001.png',
        'annotations/training/ADE_train_00000002.png',
        'annotations/training/ADE_train_00000003.png',
        'annotations/validation/ADE_val_00000001.png',
        'annotations/validation/ADE_val_00000002.png',
        'images/training/ADE_train_00000001.jpg',
        'images/training/ADE_train_00000002.jpg',
        'images/training/ADE_train_00000003.jpg',
        'images/validation/ADE_val_00000001.jpg',
        'images/validation/ADE_val_00000002.jpg',
    ]
    assert runs['a'] == runs['b']
    assert runs['a'] != runs['c']
    meta = json.loads((tmp_path / 'a' / 'meta.json').read_text())
    assert meta['num_classes'] == 10 and meta['classes'][0] == 'T-shirt/top'
    assert meta['reduce_zero_label'] is True
    for path in (tmp_path / 'a' / 'annotations').rglob('*.png'):
        label = np.asarray(Image.open(path))
        assert label.dtype == np.uint8 and label.shape == (48, 48)
        assert label.max() <= 10 and (label > 0).any() and (label == 0).any()
    image = Image.open(tmp_path / 'a/images/training/ADE_train_00000001.jpg')
    assert image.mode == 'RGB' and image.size == (48, 48)
    # MMSeg's ADE20KDataset reads it as ADE20K: 0 -> 255 (ignore), k -> k-1
    from mmseg.datasets import ADE20KDataset
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = ADE20KDataset(
            data_root=str(tmp_path / 'a'),
            data_prefix=dict(
                img_path='images/validation',
                seg_map_path='annotations/validation'),
            pipeline=[dict(type='LoadAnnotations')])
        assert len(dataset) == 2
        gt = dataset[0]['gt_seg_map']
    raw = np.asarray(Image.open(dataset[0]['seg_map_path']))
    assert np.array_equal(gt == 255, raw == 0)
    assert np.array_equal(gt[raw > 0], raw[raw > 0] - 1)
    with pytest.raises(SystemExit, match=r'--fmnist-root=.*not found'):
        make_fmnist_scenes.main([str(tmp_path / 'd'), '--fmnist-root',
                                 str(tmp_path / 'nowhere')])


class _LookUp:
    """Pickles as ``getattr(owner, name)``."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize('owner, name', [
    ('history_buffer', '__init__'),
    ('ndarray', 'tofile'),
])
def test_runner_allowlist_refuses_other_lookups(owner, name, tmp_path):
    """Runner checkpoints load with weights_only=True, other getattr don't."""
    from mmengine.logging import HistoryBuffer
    owner = HistoryBuffer if owner == 'history_buffer' else np.ndarray
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {}, 'x': _LookUp(owner, name)}, path)
    with pytest.raises(Exception, match='only the public methods of '
                       'mmengine HistoryBuffer'):
        torch.load(path, weights_only=True)
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save({'message_hub': {'loss': buffer}}, path)
    loaded = torch.load(path, weights_only=True)['message_hub']['loss']
    assert loaded.mean() == 1.5 and loaded.statistics('max') == 2.0
