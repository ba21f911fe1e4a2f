"""SIGTERM mid-epoch: checkpoint, exit 75, resume with the batches left."""
import shutil
import signal
import sys

import pytest
import torch
from reliability_utils import (ROOT, config_with_hooks, iteration_losses,
                               plugin_env, run, runs_losses, train_cmd)

# 16 images / batch 4: 4 iterations per epoch, 3 epochs.
ITERS_PER_EPOCH = 4
EPOCHS = 3
SIGNAL_AT = 2 * ITERS_PER_EPOCH + 2  # epoch 3, as its 2nd iteration starts
COMMON = [
    f'train_cfg.max_epochs={EPOCHS}',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.worker_init_fn.type=epoch_worker_init_fn',
    'randomness.deterministic=True',
]
PREEMPTION = "dict(type='NonFiniteLossHook'), dict(type='PreemptionHook')"
SIGNAL = f"dict(type='SignalAtIterHook', iteration={SIGNAL_AT})"


def _launch(work, options, *extra, config, processes, port=None):
    """tools/train.py, or tools/dist_train.sh with ``processes`` > 1, in a
    session of its own (the signal goes to its whole process group)."""
    if processes == 1:
        cmd = train_cmd(work, options, *extra, config=config)
        return run(cmd, env=plugin_env(), new_session=True)
    cmd = [
        'bash', ROOT / 'tools/dist_train.sh', config, processes,
        '--work-dir', work, *extra, '--cfg-options', *options
    ]
    env = dict(plugin_env(), PYTHON=sys.executable, PORT=str(port),
               OMP_NUM_THREADS='1')
    return run(cmd, env=env, new_session=True)


def _weights(path):
    return torch.load(path, weights_only=True)['state_dict']


def _preempt_and_resume(tiny_run, tmp_path, options, processes=1,
                        port=None):
    """An uninterrupted run without the hook, and a run signalled during
    iteration SIGNAL_AT then resumed with --resume: the same iterations,
    losses and final weights, bit for bit. Returns a copy of the
    preemption checkpoint (the resumed run removes it)."""
    straight = tmp_path / 'straight'
    (tmp_path / 'plain').mkdir()
    config = config_with_hooks(tmp_path / 'plain',
                               "dict(type='NonFiniteLossHook')")
    proc = _launch(straight, options, config=config, processes=processes,
                   port=port)
    assert proc.returncode == 0, proc.stdout[-3000:]
    expected = iteration_losses(straight)
    assert sorted(expected) == list(range(1, EPOCHS * ITERS_PER_EPOCH + 1))

    work = tmp_path / 'preempted'
    (tmp_path / 'signalled').mkdir()
    config = config_with_hooks(tmp_path / 'signalled',
                               f'{PREEMPTION}, {SIGNAL}')
    proc = _launch(work, options, config=config, processes=processes,
                   port=port)
    # torchrun, signalled too, would report 1; dist_train.sh exits with 75
    assert proc.returncode == 75, proc.stdout[-3000:]
    assert proc.stdout.count('PreemptionHook: SIGTERM received; stopped '
                             f'after iteration {SIGNAL_AT} (epoch 3, batch '
                             '2 of 4)') == 1, proc.stdout[-3000:]
    saved = work / f'preempted_iter_{SIGNAL_AT}.pth'
    assert (work / 'last_checkpoint').read_text() == str(saved)
    assert not (work / 'epoch_3.pth').exists()
    assert max(iteration_losses(work)) == SIGNAL_AT  # it finished that one
    kept = tmp_path / 'preempted_copy.pth'  # the resume replaces it
    shutil.copy(saved, kept)

    (tmp_path / 'resumed').mkdir()
    config = config_with_hooks(tmp_path / 'resumed', PREEMPTION)
    proc = _launch(work, options, '--resume', config=config,
                   processes=processes, port=port)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f'resumed epoch: 2, iter: {SIGNAL_AT}' in proc.stdout
    assert ('resuming epoch 3 after its first 2 batches (iteration '
            f'{SIGNAL_AT})') in proc.stdout
    first, second = runs_losses(work)
    assert sorted(first) == list(range(1, SIGNAL_AT + 1))
    # the resumed run trained exactly the batches that were left
    assert sorted(second) == list(
        range(SIGNAL_AT + 1, EPOCHS * ITERS_PER_EPOCH + 1))
    resumed = {**first, **second}
    for it in sorted(expected):
        assert resumed[it] == expected[it], (it, resumed[it], expected[it])
    a, b = _weights(straight / 'epoch_3.pth'), _weights(work / 'epoch_3.pth')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # epoch_3.pth replaced the preemption checkpoint
    assert not saved.exists()
    return kept


@pytest.mark.parametrize('workers', [0, 2])
def test_sigterm_mid_epoch_then_resume_is_exact(tiny_run, tmp_path,
                                                workers):
    options = tiny_run['options'] + COMMON + [
        f'train_dataloader.num_workers={workers}'
    ]
    kept = _preempt_and_resume(tiny_run, tmp_path, options)
    # read as --resume reads it (weights_only, the project's allowlist):
    # where in the epoch it stopped, and the mask step counter
    from mmmoma.fileio import load_checkpoint
    saved = load_checkpoint(str(kept))
    assert saved['meta']['epoch'] == 2 and saved['meta']['iter'] == SIGNAL_AT
    assert saved['meta']['preemption']['batches_done'] == 2
    assert saved['state_dict']['mask_step'] == SIGNAL_AT


def test_sigterm_with_two_gloo_processes(tiny_run, tmp_path, free_port):
    options = tiny_run['options'] + COMMON + [
        'train_dataloader.num_workers=1',
        'train_dataloader.batch_size=2',  # 2 x 2: 4 iterations per epoch
        'randomness.diff_rank_seed=True',
    ]
    _preempt_and_resume(tiny_run, tmp_path, options, processes=2,
                        port=free_port)


def test_without_the_hook_sigterm_loses_the_epoch(tiny_run, tmp_path):
    """The control: without PreemptionHook the same signal kills the run
    mid-epoch; the last checkpoint is the previous epoch's, so the
    iterations of this epoch are lost and must be trained again."""
    options = tiny_run['options'] + COMMON + [
        'train_dataloader.num_workers=0'
    ]
    work = tmp_path / 'work'
    config = config_with_hooks(tmp_path,
                               f"dict(type='NonFiniteLossHook'), {SIGNAL}")
    proc = _launch(work, options, config=config, processes=1)
    assert proc.returncode == -signal.SIGTERM, proc.stdout[-3000:]
    assert not list(work.glob('preempted_iter_*.pth'))
    assert (work / 'last_checkpoint').read_text().endswith('epoch_2.pth')
    assert max(iteration_losses(work)) < SIGNAL_AT  # killed inside it


@pytest.mark.parametrize('kwargs, match', [
    (dict(signal='SIGKILL'), r"signal='SIGKILL' is not a signal"),
    (dict(signal='NOPE'), r"signal='NOPE' is not a signal"),
    (dict(exit_code=0), r'exit_code=0 must be an int from 1 to 255'),
    (dict(exit_code=256), r'exit_code=256 must be an int from 1 to 255'),
    (dict(exit_code=True), r'exit_code=True must be an int'),
])
def test_bad_hook_arguments(kwargs, match):
    from mmmoma.engine import PreemptionHook
    with pytest.raises(ValueError, match=match):
        PreemptionHook(**kwargs)


def test_signal_names_and_numbers():
    from mmmoma.engine import EXIT_PREEMPTED, PreemptionHook
    assert PreemptionHook('TERM').signum == signal.SIGTERM
    assert PreemptionHook(int(signal.SIGUSR1)).signum == signal.SIGUSR1
    assert PreemptionHook().exit_code == EXIT_PREEMPTED == 75
