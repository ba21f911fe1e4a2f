"""A NaN loss stops the run at that iteration, or skips that step."""
import math
import re

import pytest
import torch
from reliability_utils import (config_with_hooks, iteration_losses,
                               plugin_env, run, train_cmd)

POISON_AT = 6  # iteration 6 = epoch 2, 2nd of its 4 iterations


def _train(tiny_run, work, action):
    config = config_with_hooks(
        work.parent, f"dict(type='NonFiniteLossHook', action={action!r}), "
        f"dict(type='PoisonTeacherHook', teacher='mae', "
        f'iteration={POISON_AT})')
    return run(train_cmd(work, tiny_run['options'] +
                         ['train_cfg.max_epochs=3'], config=config),
               env=plugin_env())


def _finite(path) -> bool:
    state = torch.load(path, weights_only=True)['state_dict']
    return all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


def test_nan_stops_the_run_and_names_the_teacher(tiny_run, tmp_path):
    work = tmp_path / 'work'
    good = (work / 'epoch_1.pth')
    proc = _train(tiny_run, work, 'stop')
    assert proc.returncode != 0
    assert re.search(
        rf"Non-finite loss at iteration {POISON_AT} \(epoch 2\): "
        r"loss_mae=nan \(teacher 'mae'\)", proc.stdout), proc.stdout[-3000:]
    assert 'loss_mocov3' not in proc.stdout.split('Non-finite loss')[1]
    assert (f'the last checkpoint, {good}, was written before it'
            in proc.stdout)
    # it stopped there: no later iteration, no later checkpoint
    assert max(iteration_losses(work)) == POISON_AT - 1
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert (work / 'last_checkpoint').read_text() == str(good)
    assert _finite(good)


def test_nan_step_is_skipped_when_asked(tiny_run, tmp_path):
    work = tmp_path / 'work'
    proc = _train(tiny_run, work, 'skip')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(
        rf"NonFiniteLossHook: skipped iteration {POISON_AT} \(epoch 2\): "
        r"loss_mae=nan \(teacher 'mae'\); 1 in a row, 1 in all",
        proc.stdout), proc.stdout[-3000:]
    losses = iteration_losses(work)
    assert sorted(losses) == list(range(1, 13))
    assert math.isnan(losses[POISON_AT]['loss_mae'])
    assert all(
        math.isfinite(v) for it, rec in losses.items() if it != POISON_AT
        for v in rec.values())
    assert _finite(work / 'epoch_3.pth')  # the NaN never reached a weight


@pytest.mark.parametrize('kwargs, match', [
    (dict(action='ignore'), r"action='ignore' is not one of \('stop', "
     r"'skip'\)"),
    (dict(max_skips=0), r'max_skips=0 must be an int >= 1'),
])
def test_bad_hook_arguments(kwargs, match):
    from mmmoma.engine import NonFiniteLossHook
    with pytest.raises(ValueError, match=match):
        NonFiniteLossHook(**kwargs)
