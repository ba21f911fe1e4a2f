"""``--resume`` compares the optimizer's param groups before loading.

A checkpoint whose optimizer has other param groups than the config's
(another ``paramwise_cfg``, another constructor) used to get its weights
loaded and then end in MMEngine's ``ValueError: loaded state dict has a
different number of parameter groups``. It is refused before anything is
loaded, naming the groups of both.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.runner import EpochBasedTrainLoop, Runner

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import launch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
# One group per parameter: DefaultOptimWrapperConstructor with any
# paramwise_cfg.
PER_PARAMETER = 'optim_wrapper.paramwise_cfg.bias_decay_mult=0.0'


@pytest.fixture(scope='module')
def checkpoint(tiny_moma_run, tmp_path_factory) -> Path:
    """One epoch of the tiny MOMA (one param group of every parameter)."""
    work_dir = tmp_path_factory.mktemp('launch_resume')
    proc = subprocess.run(
        [sys.executable, ROOT / 'tools/train.py', CONFIG, '--work-dir',
         work_dir, '--cfg-options', *tiny_moma_run['options'],
         'train_cfg.max_epochs=1'],
        env={**os.environ, 'PYTHONPATH': str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return work_dir / 'epoch_1.pth'


@pytest.fixture
def loads(monkeypatch) -> list:
    """Record what the Runner loads and every iteration it would train."""
    calls = []
    real_resume = Runner.resume

    def resume(self, filename, *args, **kwargs):
        calls.append(('resume', filename))
        return real_resume(self, filename, *args, **kwargs)

    monkeypatch.setattr(Runner, 'resume', resume)
    monkeypatch.setattr(EpochBasedTrainLoop, 'run_iter',
                        lambda self, *args: calls.append(('iter', args)))
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    return calls


def resume(tmp_path: Path, ckpt: Path, options: list, *extra) -> None:
    """What ``tools/train.py CONFIG --resume CKPT`` runs, in-process."""
    launch.train([
        str(CONFIG), '--work-dir',
        str(tmp_path / 'work'), '--resume',
        str(ckpt), '--cfg-options', *options, 'train_cfg.max_epochs=2',
        *extra
    ])


def test_other_param_groups_are_refused_before_loading(
        checkpoint, tiny_moma_run, tmp_path, loads):
    with pytest.raises(SystemExit) as info:
        resume(tmp_path, checkpoint, tiny_moma_run['options'], PER_PARAMETER)
    message = str(info.value)
    assert message.startswith(
        f'--resume {str(checkpoint)!r} does not match the config '
        f'{str(CONFIG)!r}; nothing was loaded.'), message
    # the weights match: only the optimizer is named
    assert 'missing' not in message and 'mis-shaped' not in message
    assert re.search(r'\n  optimizer: checkpoint 1 param group of \[\d+\] '
                     r'parameters, config \d+ param groups of '
                     r'\[1, 1, 1, 1, 1, \.\.\.\] parameters\n', message), (
                         message)
    assert 'optim_wrapper\'s constructor and paramwise_cfg' in message
    assert not loads


def test_without_the_check_mmengine_fails_after_loading_the_weights(
        checkpoint, tiny_moma_run, tmp_path, loads, monkeypatch):
    """The control: the same resume reaches MMEngine, which loads the
    model and then fails in the optimizer."""
    monkeypatch.setattr(launch, 'param_group_differences',
                        lambda saved, current: [])
    with pytest.raises(ValueError, match='loaded state dict has a different '
                       'number of parameter groups'):
        resume(tmp_path, checkpoint, tiny_moma_run['options'], PER_PARAMETER)
    assert loads == [('resume', str(checkpoint))]


def test_same_param_groups_resume(checkpoint, tiny_moma_run, tmp_path,
                                  loads, monkeypatch):
    """The check builds the optimizer once; the resumed run uses it and
    trains the second epoch."""
    built = []
    real_build = Runner.build_optim_wrapper

    def build(self, optim_wrapper):
        wrapper = real_build(self, optim_wrapper)
        built.append(wrapper)
        return wrapper

    monkeypatch.setattr(Runner, 'build_optim_wrapper', build)
    resume(tmp_path, checkpoint, tiny_moma_run['options'])
    assert loads[0] == ('resume', str(checkpoint))
    assert len([c for c in loads if c[0] == 'iter']) == 4  # epoch 2
    assert len({id(w) for w in built}) == 1


@pytest.mark.parametrize('saved,current,expected', [
    (dict(param_groups=[dict(params=[0, 1]), dict(params=[2])]),
     dict(param_groups=[dict(params=[0]), dict(params=[1, 2])]),
     ['optimizer: checkpoint 2 param groups of [2, 1] parameters, config 2 '
      'param groups of [1, 2] parameters']),
    (dict(param_groups=[dict(params=[0, 1])], state={}),
     dict(param_groups=[dict(params=[5, 6])]), []),
    (dict(student=dict(param_groups=[dict(params=[0])])),
     dict(student=dict(param_groups=[dict(params=[0])]),
          neck=dict(param_groups=[dict(params=[1])])),
     ["optimizer 'neck': checkpoint none, config 1 param group of [1] "
      'parameters']),
    (dict(weights=[1, 2]), dict(param_groups=[dict(params=[0])]),
     ["optimizer: the checkpoint's entry is not the state of an optimizer "
      'wrapper (no param_groups with params)']),
], ids=['sizes', 'same', 'wrapper-dict', 'not-an-optimizer'])
def test_param_group_differences(saved, current, expected):
    assert launch.param_group_differences(saved, current) == expected
