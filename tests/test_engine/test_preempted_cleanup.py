"""``preempted_iter_N.pth`` is removed once a newer checkpoint replaces it.

Preempted twice in epoch 3 and resumed twice, the work dir ends as an
uninterrupted run's: each preemption checkpoint stays while
``last_checkpoint`` points at it (written, then resumed from), and goes
when the next preemption or the end of epoch 3 writes a newer one. A
``CheckpointHook`` that keeps every checkpoint keeps them too.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mmengine.runner import EpochBasedTrainLoop

from mmmoma.engine import EXIT_PREEMPTED, PreemptionHook
from mmmoma.engine.preemption import remove_superseded

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
PLUGINS = ROOT / 'tests/data/plugins'
ITERS_PER_EPOCH = 4  # 16 images, batch 4
# Records the work dir's checkpoints after an iteration's hooks (after
# PreemptionHook's), as the next iteration would find them.
PROBE = '''import json, os
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ListCheckpointsHook(Hook):
    priority = 'LOWEST'

    def __init__(self, iteration, out):
        self.iteration, self.out = iteration, out

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            with open(self.out, 'w') as f:
                json.dump(sorted(p for p in os.listdir(runner.work_dir)
                                 if p.endswith('.pth')), f)
'''


def train(tmp_path: Path, options: list, hooks: str, *extra: str):
    """tools/train.py on the tiny MOMA, 3 epochs, with ``hooks`` after the
    epoch seeds and PreemptionHook, in a session of its own."""
    name = f'run{len(list(tmp_path.glob("run*.py")))}'
    config = tmp_path / f'{name}.py'
    config.write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['mmmoma', 'reliability_hooks', "
        "'cleanup_probe'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='EpochSeedHook'), "
        f"dict(type='PreemptionHook'), {hooks}]\n")
    path = os.pathsep.join([str(tmp_path), str(PLUGINS), str(ROOT)])
    return subprocess.run(
        [sys.executable, ROOT / 'tools/train.py', config, '--work-dir',
         tmp_path / 'work', *extra, '--cfg-options', *options,
         'train_cfg.max_epochs=3', 'train_dataloader.num_workers=0'],
        env={**os.environ, 'PYTHONPATH': path},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, start_new_session=True)


def checkpoints(work: Path) -> list:
    return sorted(p.name for p in work.glob('*.pth'))


def test_preempted_checkpoints_are_removed_when_replaced(
        tiny_moma_run, tmp_path):
    (tmp_path / 'cleanup_probe.py').write_text(PROBE)
    work = tmp_path / 'work'
    options = tiny_moma_run['options']

    first = 2 * ITERS_PER_EPOCH + 2  # epoch 3, after its 2nd batch
    proc = train(tmp_path, options,
                 f"dict(type='SignalAtIterHook', iteration={first})")
    assert proc.returncode == EXIT_PREEMPTED, proc.stdout[-3000:]
    assert checkpoints(work) == [
        'epoch_1.pth', 'epoch_2.pth', f'preempted_iter_{first}.pth'
    ]

    # Resumed from it, preempted again one iteration later: the newer one
    # replaces it.
    proc = train(tmp_path, options,
                 f"dict(type='SignalAtIterHook', iteration={first + 1})",
                 '--resume')
    assert proc.returncode == EXIT_PREEMPTED, proc.stdout[-3000:]
    assert f'resumed epoch: 2, iter: {first}' in proc.stdout
    assert checkpoints(work) == [
        'epoch_1.pth', 'epoch_2.pth', f'preempted_iter_{first + 1}.pth'
    ]
    assert (work / 'last_checkpoint').read_text() == str(
        work / f'preempted_iter_{first + 1}.pth')

    # Resumed again: it stays until epoch_3.pth is written.
    listed = tmp_path / 'listed.json'
    last = 3 * ITERS_PER_EPOCH
    proc = train(
        tmp_path, options,
        f"dict(type='ListCheckpointsHook', iteration={last}, "
        f'out={str(listed)!r})', '--resume')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f'preempted_iter_{first + 1}.pth' in json.loads(listed.read_text())
    assert (f'PreemptionHook: removed {work}/preempted_iter_{first + 1}.pth, '
            f'replaced by {work}/epoch_3.pth.') in proc.stdout
    assert checkpoints(work) == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_3.pth')


# ----------------------------------------------------- one hook, by hand
class Runner:
    """What PreemptionHook reads of a Runner: a work dir with epoch_2.pth
    and preemption checkpoints, the message hub, the hooks."""

    def __init__(self, work_dir: Path, max_keep_ckpts: int) -> None:
        self.work_dir = str(work_dir)
        self.hooks = [CheckpointHook(interval=1,
                                     max_keep_ckpts=max_keep_ckpts)]
        self.message_hub = MessageHub(f'cleanup-{id(self)}')
        self.message_hub.update_info('last_ckpt',
                                     str(work_dir / 'epoch_2.pth'))
        self.train_loop = mock.MagicMock(spec=EpochBasedTrainLoop)
        self.train_loop.dataloader = mock.MagicMock()
        self.iter = 10  # resumed from preempted_iter_10.pth
        for name in ('epoch_2.pth', 'preempted_iter_10.pth',
                     'preempted_iter_30.pth'):
            (work_dir / name).write_bytes(b'')


@pytest.mark.parametrize('max_keep_ckpts,saved,kept', [
    (3, 'epoch_3.pth', ['preempted_iter_30.pth']),
    (-1, 'epoch_3.pth', ['preempted_iter_10.pth', 'preempted_iter_30.pth']),
    (3, None, ['preempted_iter_10.pth', 'preempted_iter_30.pth']),
], ids=['replaced', 'keep-all', 'best-only'])
def test_epoch_end(tmp_path, max_keep_ckpts, saved, kept):
    """At the end of epoch 3 (iteration 12): ``saved`` is the checkpoint
    CheckpointHook wrote and pointed last_checkpoint at (None: only a
    best checkpoint, which does not move it). A later preemption
    checkpoint (iteration 30, another run's) is never removed here."""
    runner = Runner(tmp_path, max_keep_ckpts)
    hook = PreemptionHook()
    hook.before_train(runner)
    try:
        runner.iter = 12
        if saved is not None:
            (tmp_path / saved).write_bytes(b'')
            runner.message_hub.update_info('last_ckpt',
                                           str(tmp_path / saved))
        hook.after_train_epoch(runner)
    finally:
        hook.after_train(runner)  # the signal handler back
    assert sorted(p.name for p in tmp_path.glob('preempted_*')) == kept


def test_remove_superseded_keeps_the_latest(tmp_path):
    for n in (3, 7, 9):
        (tmp_path / f'preempted_iter_{n}.pth').write_bytes(b'')
    (tmp_path / 'preempted_iter_x.pth').write_bytes(b'')
    latest = str(tmp_path / 'preempted_iter_7.pth')
    assert remove_superseded(str(tmp_path), latest, 7) == [
        str(tmp_path / 'preempted_iter_3.pth')
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'preempted_iter_7.pth', 'preempted_iter_9.pth', 'preempted_iter_x.pth'
    ]
