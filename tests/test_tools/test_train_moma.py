"""MOMA through MMEngine's Runner and tools/train.py, on CPU."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmmoma  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@pytest.fixture(scope='module')
def moma_run(tmp_path_factory):
    """Images, teacher checkpoints in MMPretrain layout, cfg-options."""
    from mmpretrain.models import MoCoV3ViT, VisionTransformer
    root = tmp_path_factory.mktemp('moma_run')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        base = rng.integers(0, 255, (1, 1, 3))
        ramp = np.linspace(0, 1, 40)[:, None, None] * rng.integers(0, 255, 3)
        img = np.clip(base + ramp + rng.normal(0, 8, (40, 40, 3)), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(images / f'{i:02d}.png')
    torch.manual_seed(0)
    ckpts = {}
    for name, cls in (('mocov3', MoCoV3ViT), ('mae', VisionTransformer)):
        teacher = cls(arch=dict(TINY), img_size=32, patch_size=8,
                      out_type='raw')
        teacher.init_weights()
        state = {'backbone.' + k: v for k, v in teacher.state_dict().items()}
        ckpts[name] = root / f'{name}.pth'
        torch.save({'state_dict': state}, ckpts[name])
    options = [
        f'model.teachers.mocov3.init_cfg.checkpoint={ckpts["mocov3"]}',
        f'model.teachers.mae.init_cfg.checkpoint={ckpts["mae"]}',
        f'train_dataloader.dataset.data_root={images}',
    ]
    return dict(root=root, ckpts=ckpts, options=options)


def _train(args, cwd):
    cmd = [sys.executable, str(ROOT / 'tools/train.py'), str(CONFIG)] + args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_runner_keeps_teachers_frozen(moma_run, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(
        dict(o.split('=', 1) for o in moma_run['options']))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    for name, path in moma_run['ckpts'].items():
        saved = torch.load(path, weights_only=True)['state_dict']
        for k, v in model.teachers[name].state_dict().items():
            assert torch.equal(v, saved['backbone.' + k]), (name, k)
        assert not model.teachers[name].training
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    keys = list(ckpt['state_dict'])
    assert not [k for k in keys if k.startswith('teachers.')]
    assert any(k.startswith('necks.mocov3.') for k in keys)
    assert any(k.startswith('backbone.layers.') for k in keys)


def test_train_then_resume_with_tools_train(moma_run, tmp_path):
    work = tmp_path / 'work'
    log = _train([
        '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=1'
    ] + moma_run['options'], cwd=tmp_path)
    losses = [float(v) for v in re.findall(r'loss_mae: ([0-9.]+)', log)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    first = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert first['meta']['epoch'] == 1
    assert not [k for k in first['state_dict'] if 'teachers.' in k]

    log = _train([
        '--work-dir', str(work), '--resume', str(work / 'epoch_1.pth'),
        '--cfg-options', 'train_cfg.max_epochs=2'
    ] + moma_run['options'], cwd=tmp_path)
    assert re.search(r'resumed epoch: 1, iter: 4', log), log[-2000:]
    assert 'Epoch(train) [1]' not in log  # continued, not restarted
    assert 'Epoch(train) [2]' in log
    second = torch.load(work / 'epoch_2.pth', weights_only=False)
    assert second['meta']['epoch'] == 2
    # the student kept training from the resumed weights
    k = 'backbone.layers.0.attn.qkv.weight'
    assert not torch.equal(first['state_dict'][k], second['state_dict'][k])
