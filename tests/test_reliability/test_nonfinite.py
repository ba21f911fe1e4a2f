"""A NaN or Inf loss stops the run at that iteration, or skips that step
(and stops after ``max_skips`` in a row)."""
import math
import re

import pytest
import torch
from reliability_utils import (config_with_hooks, iteration_losses,
                               plugin_env, run, train_cmd)

POISON_AT = 6  # iteration 6 = epoch 2, 2nd of its 4 iterations


def _train(tiny_run, work, action, fault=None, **hook):
    """Three epochs with ``NonFiniteLossHook(action, **hook)`` and the fault
    ``fault`` (default: the MAE teacher outputs NaN at POISON_AT)."""
    fault = fault or ("dict(type='PoisonTeacherHook', teacher='mae', "
                      f'iteration={POISON_AT})')
    extra = ''.join(f', {k}={v!r}' for k, v in hook.items())
    config = config_with_hooks(
        work.parent,
        f"dict(type='NonFiniteLossHook', action={action!r}{extra}), {fault}")
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


def test_inf_stops_the_run_and_names_the_teacher(tiny_run, tmp_path):
    work = tmp_path / 'work'
    proc = _train(tiny_run, work, 'stop',
                  f"dict(type='InfLossHook', key='loss_mae', "
                  f'iterations=[{POISON_AT}])')
    assert proc.returncode != 0
    assert re.search(
        rf"Non-finite loss at iteration {POISON_AT} \(epoch 2\): "
        r"loss_mae=inf \(teacher 'mae'\)", proc.stdout), proc.stdout[-3000:]
    assert max(iteration_losses(work)) == POISON_AT - 1
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']


def test_skip_stops_after_max_skips_in_a_row(tiny_run, tmp_path):
    # Iteration 3 is skipped alone (the streak restarts at 4); 5 and 6 are
    # two in a row, the limit, so the run stops at 6.
    work = tmp_path / 'work'
    proc = _train(tiny_run, work, 'skip',
                  "dict(type='InfLossHook', key='loss_mae', "
                  'iterations=[3, 5, 6])',
                  max_skips=2)
    assert proc.returncode != 0
    for it, streak, total in ((3, 1, 1), (5, 1, 2), (6, 2, 3)):
        assert re.search(
            rf'skipped iteration {it} \(epoch {(it - 1) // 4 + 1}\): '
            rf"loss_mae=inf \(teacher 'mae'\); {streak} in a row, "
            rf'{total} in all', proc.stdout), (it, proc.stdout[-3000:])
    assert re.search(
        r'Non-finite loss at iteration 6 \(epoch 2\): loss_mae=inf '
        r"\(teacher 'mae'\)\. 2 consecutive steps were skipped, the limit",
        proc.stdout), proc.stdout[-3000:]
    assert 'skipped iteration 4' not in proc.stdout
    assert max(iteration_losses(work)) == 5  # nothing after the stop
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert _finite(work / 'epoch_1.pth')


@pytest.mark.parametrize('kwargs, match', [
    (dict(action='ignore'), r"action='ignore' is not one of \('stop', "
     r"'skip'\)"),
    (dict(max_skips=0), r'max_skips=0 must be an int >= 1'),
])
def test_bad_hook_arguments(kwargs, match):
    from mmmoma.engine import NonFiniteLossHook
    with pytest.raises(ValueError, match=match):
        NonFiniteLossHook(**kwargs)
