"""MOMA through MMEngine's Runner and tools/train.py, on CPU."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import mmmoma  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'


def _train(args, cwd):
    cmd = [sys.executable, str(ROOT / 'tools/train.py'), str(CONFIG)] + args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_runner_keeps_teachers_frozen(tiny_moma_run, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(
        dict(o.split('=', 1) for o in tiny_moma_run['options']))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model
    for name, path in tiny_moma_run['ckpts'].items():
        saved = torch.load(path, weights_only=True)['state_dict']
        for k, v in model.teachers[name].state_dict().items():
            assert torch.equal(v, saved['backbone.' + k]), (name, k)
        assert not model.teachers[name].training
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    keys = list(ckpt['state_dict'])
    assert not [k for k in keys if k.startswith('teachers.')]
    assert any(k.startswith('necks.mocov3.') for k in keys)
    assert any(k.startswith('backbone.layers.') for k in keys)


def test_train_then_resume_with_tools_train(tiny_moma_run, tmp_path):
    work = tmp_path / 'work'
    log = _train([
        '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=1'
    ] + tiny_moma_run['options'], cwd=tmp_path)
    losses = [float(v) for v in re.findall(r'loss_mae: ([0-9.]+)', log)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    first = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert first['meta']['epoch'] == 1
    assert not [k for k in first['state_dict'] if 'teachers.' in k]

    log = _train([
        '--work-dir', str(work), '--resume', str(work / 'epoch_1.pth'),
        '--cfg-options', 'train_cfg.max_epochs=2'
    ] + tiny_moma_run['options'], cwd=tmp_path)
    assert re.search(r'resumed epoch: 1, iter: 4', log), log[-2000:]
    assert 'Epoch(train) [1]' not in log  # continued, not restarted
    assert 'Epoch(train) [2]' in log
    second = torch.load(work / 'epoch_2.pth', weights_only=False)
    assert second['meta']['epoch'] == 2
    # the student kept training from the resumed weights
    k = 'backbone.layers.0.attn.qkv.weight'
    assert not torch.equal(first['state_dict'][k], second['state_dict'][k])
