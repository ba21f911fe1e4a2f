"""A full disk while a checkpoint is written: the previous one stays whole.

ENOSPC in the middle of a checkpoint write must stop the run with a
message that names the file and the cause, leave the previous checkpoint
(and ``last_checkpoint``) byte-identical and loadable, and leave no
temporary file behind. torch itself reports such a write as
``unexpected pos 704 vs 598``, naming neither.
"""
import errno
import hashlib
import importlib.util
import os
from pathlib import Path

import pytest
import torch
from reliability_utils import CONFIG, PLUGINS, plugin_env, run, train_cmd

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.fileio import atomic_save

NO_SPACE = os.strerror(errno.ENOSPC)  # 'No space left on device'
_SPEC = importlib.util.spec_from_file_location(
    'disk_full_hooks', PLUGINS / 'disk_full_hooks.py')
disk_full_hooks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(disk_full_hooks)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_disk_full_during_a_training_checkpoint(tiny_moma_run, tmp_path):
    work_dir = tmp_path / 'work'
    options = tiny_moma_run['options']
    proc = run(train_cmd(work_dir, options + ['train_cfg.max_epochs=1']))
    assert proc.returncode == 0, proc.stdout[-3000:]
    first, last = work_dir / 'epoch_1.pth', work_dir / 'last_checkpoint'
    before = {p.name: digest(p) for p in (first, last)}

    config = tmp_path / 'tiny_disk_full.py'
    config.write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['mmmoma', 'disk_full_hooks'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='EpochSeedHook'), "
        "dict(type='DiskFullAtEpochHook', epoch=2)]\n")
    env = plugin_env()
    env['PYTHONPATH'] = os.pathsep.join((str(PLUGINS), env['PYTHONPATH']))
    proc = run(train_cmd(work_dir, options + ['train_cfg.max_epochs=2'],
                         '--resume', config=config), env=env)
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert 'Epoch(train) [2][4/4]' in out  # it failed at the save
    target = work_dir / 'epoch_2.pth'
    assert f'{target} could not be written: {NO_SPACE}' in out, out[-3000:]
    assert 'The previous epoch_2.pth, if any, is unchanged' in out
    assert not target.exists()
    # The previous checkpoint, and the pointer to it, are as they were.
    assert {p.name: digest(p) for p in (first, last)} == before
    checkpoint = torch.load(first, weights_only=True)
    assert checkpoint['meta']['epoch'] == 1
    assert [p.name for p in work_dir.glob('*.pth')] == ['epoch_1.pth']
    assert not list(work_dir.rglob('*.tmp'))  # the half-written temporary


@pytest.mark.parametrize('room', [0, 700, 5000])
def test_disk_full_while_overwriting_a_checkpoint(tmp_path, monkeypatch,
                                                  room):
    """The same file name saved again (as ``last_checkpoint`` is): the
    old bytes survive whatever point the disk filled up at."""
    path = tmp_path / 'latest.pth'
    atomic_save({'w': torch.zeros(1000)}, str(path))
    old = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, 'fdopen',
                        lambda *a, **k: disk_full_hooks.FillsUp(
                            real_fdopen(*a, **k), room))
    with pytest.raises(OSError) as info:
        atomic_save({'w': torch.ones(1000)}, str(path))
    assert info.value.errno == errno.ENOSPC
    assert f'{path} could not be written: {NO_SPACE}' in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert torch.equal(
        torch.load(path, weights_only=True)['w'], torch.zeros(1000))
    assert [p.name for p in tmp_path.iterdir()] == ['latest.pth']
