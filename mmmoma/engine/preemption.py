"""Stop on a scheduler's signal with a checkpoint, resume mid-epoch exactly.

Slurm (``--signal=TERM@120``) and cloud schedulers send a signal shortly
before they kill a job. :class:`PreemptionHook` turns it into a clean stop:
every rank finishes its current iteration, one checkpoint records where in
the epoch the run stopped, and the job exits with :data:`EXIT_PREEMPTED`.
``tools/train.py CONFIG --resume`` then continues with exactly the batches
that were left. Register it in ``custom_hooks``::

    custom_hooks = [dict(type='PreemptionHook', signal='SIGTERM')]
"""
import os.path as osp
import random
import signal as signals
import threading
from typing import Dict, Optional, Union

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, barrier, get_rank,
                           get_world_size, is_main_process)
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from ..fileio import atomic_write

#: Exit code of a preempted run: sysexits.h's EX_TEMPFAIL ("temporary
#: failure; the user is invited to retry"). Not 124 (``timeout``), not
#: 128 + N (what a shell reports for a process killed by signal N, e.g. 143
#: for SIGTERM), not 1 or 2 (errors, bad arguments).
EXIT_PREEMPTED = 75
# Signals that cannot be caught, or that report a crash.
_REFUSED = ('SIGKILL', 'SIGSTOP', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL',
            'SIGCHLD')
META_KEY = 'preemption'


def _signal_number(sig: Union[str, int]) -> signals.Signals:
    """``'SIGTERM'``, ``'TERM'`` or ``15`` -> ``signal.SIGTERM``."""
    try:
        if isinstance(sig, str):
            name = sig.upper()
            found = signals.Signals[name if name.startswith('SIG') else
                                    'SIG' + name]
        else:
            found = signals.Signals(sig)
    except (KeyError, ValueError):
        found = None
    if found is None or found.name in _REFUSED:
        raise ValueError(
            f'PreemptionHook: signal={sig!r} is not a signal a scheduler can '
            'send and a process can catch. Allowed: a name or number of '
            'signal.Signals (SIGTERM, SIGUSR1, SIGINT, ...) other than '
            f'{", ".join(_REFUSED)}.')
    return found


def _rng_state() -> Dict:
    """This process's generator states, as tensors and plain values (so
    that a ``weights_only`` load reads them)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            gauss=float(gauss)),
        random=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Dict) -> None:
    """Inverse of :func:`_rng_state`."""
    torch.set_rng_state(state['torch'])
    numpy = state['numpy']
    np.random.set_state(('MT19937', numpy['keys'].numpy().astype(np.uint32),
                         numpy['pos'], numpy['has_gauss'], numpy['gauss']))
    version, internal, gauss = state['random']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


class _IgnoreSignalInWorker:
    """A dataloader ``worker_init_fn`` that ignores the preemption signal.

    Schedulers signal every process of the job, dataloader workers too, and
    PyTorch's workers die on a SIGTERM that their parent did not send, which
    would end the run before the iteration finishes. Workers still stop as
    usual when the main process closes the iterator.
    """

    def __init__(self, signum: int, inner=None) -> None:
        self.signum = signum
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        signals.signal(self.signum, signals.SIG_IGN)
        if self.inner is not None:
            self.inner(worker_id)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On ``signal``, checkpoint after the current iteration and exit.

    Until the signal comes the hook changes nothing: its handler only sets
    a flag, which every iteration's end reads (in a distributed run one
    all-reduce of one number per iteration, so that all ranks stop after
    the same iteration even if only some were signalled). Then the hook
    writes ``preempted_iter_<N>.pth`` (atomically, through MMEngine's
    checkpoint writer), points ``last_checkpoint`` at it and exits with
    ``exit_code``.

    The checkpoint records the epoch, the batches of it already trained on
    and every rank's random generator states. A run resumed from it
    (``--resume``) re-seeds that epoch as before (:class:`EpochSeedHook`,
    MMEngine's ``DefaultSampler``), reads and drops the batches already
    trained on, so that the data order and the dataloader workers' random
    augmentations continue exactly (this costs the loading time of those
    batches, no compute), restores the generator states and trains the
    rest: the same samples, masks and losses as an uninterrupted run, with
    ``persistent_workers=False`` as for any exact resume. Resume with the
    same number of processes.

    Args:
        signal (str | int): The signal, e.g. ``'SIGTERM'`` (Slurm's
            ``--signal=TERM@120``) or ``'SIGUSR1'``. Defaults to
            ``'SIGTERM'``.
        exit_code (int): Exit status of a preempted run, 1 to 255.
            Defaults to :data:`EXIT_PREEMPTED` (75).
    """

    priority = 'LOWEST'  # after logging, schedulers and CheckpointHook

    def __init__(self,
                 signal: Union[str, int] = 'SIGTERM',
                 exit_code: int = EXIT_PREEMPTED) -> None:
        self.signum = _signal_number(signal)
        if (not isinstance(exit_code, int) or isinstance(exit_code, bool)
                or not 1 <= exit_code <= 255):
            raise ValueError(
                f'PreemptionHook: exit_code={exit_code!r} must be an int '
                'from 1 to 255 (0 would tell the scheduler the job is done).')
        self.exit_code = exit_code
        self._requested = False
        self._previous = None
        self._resume: Optional[Dict] = None

    # ------------------------------------------------------------- signal
    def _on_signal(self, signum: int, frame) -> None:
        # Only a flag: the iteration in flight finishes first.
        self._requested = True

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            raise ValueError(
                'PreemptionHook: the train loop is '
                f'{type(loop).__name__}; allowed: EpochBasedTrainLoop '
                '(train_cfg with by_epoch=True), whose mid-epoch resume '
                'this hook adds.')
        if threading.current_thread() is not threading.main_thread():
            # Python accepts signal handlers in the main thread only.
            print_log(
                'PreemptionHook: training runs outside the main thread, '
                f'where no {self.signum.name} handler can be set; a signal '
                'will end the run without a checkpoint.',
                logger='current',
                level=30)
        else:
            self._previous = signals.signal(self.signum, self._on_signal)
        loader = loop.dataloader
        loader.worker_init_fn = _IgnoreSignalInWorker(
            int(self.signum), loader.worker_init_fn)
        if self._resume is not None:
            self._prepare_resume(runner)

    def after_train(self, runner) -> None:
        if self._previous is not None:
            signals.signal(self.signum, self._previous)
            self._previous = None

    # --------------------------------------------------------------- stop
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        flag = torch.tensor([float(self._requested)])
        all_reduce(flag, op='max')  # one rank signalled: all ranks stop
        if flag.item() == 0:
            return
        epoch, done = runner.epoch, batch_idx + 1
        step = runner.iter + 1  # iterations done, as MMEngine counts them
        states = all_gather_object(_rng_state())
        filename = f'preempted_iter_{step}.pth'
        path = osp.join(runner.work_dir, filename)
        runner.save_checkpoint(
            runner.work_dir,
            filename,
            meta={
                'epoch': epoch,  # the unfinished one: resume repeats it
                'iter': step,
                META_KEY: dict(
                    epoch=epoch,
                    iter=step,
                    batches_done=done,
                    world_size=get_world_size(),
                    rng=states)
            })
        if is_main_process():
            # --resume without a path reads this file
            with atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                              'w') as f:
                f.write(path)
        runner.message_hub.update_info('last_ckpt', path)
        barrier()  # no rank exits before the checkpoint is on disk
        print_log(
            f'PreemptionHook: {self.signum.name} received; stopped after '
            f'iteration {step} (epoch {epoch + 1}, batch {done} of '
            f'{len(runner.train_loop.dataloader)}) and saved {path}. '
            f'Exiting with code {self.exit_code}; continue with '
            'tools/train.py CONFIG --resume.',
            logger='current',
            level=30)
        raise SystemExit(self.exit_code)

    # ------------------------------------------------------------- resume
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        info = checkpoint.get('meta', {}).get(META_KEY)
        self._resume = dict(info) if info else None

    def _prepare_resume(self, runner) -> None:
        """Make the loop's next epoch skip the batches already trained on,
        when the run was resumed from a preemption checkpoint."""
        info, self._resume = self._resume, None
        loop = runner.train_loop
        # load_from (not --resume) leaves the loop at 0: start afresh
        if (loop.epoch, loop.iter) != (info['epoch'], info['iter']):
            return
        if info['world_size'] != get_world_size():
            raise ValueError(
                'PreemptionHook: the checkpoint was written by '
                f"{info['world_size']} processes and this run has "
                f'{get_world_size()}; a mid-epoch resume needs the same '
                'number (each process continues its own share of the '
                'epoch). Allowed: the same launch, or resume from the last '
                'epoch_N.pth checkpoint instead.')
        done, rng = info['batches_done'], info['rng'][get_rank()]

        def run_resumed_epoch() -> None:
            # MMEngine's EpochBasedTrainLoop.run_epoch (0.10), entered at
            # batch `done`; later epochs use the class's own method again.
            del loop.run_epoch
            runner.call_hook('before_train_epoch')
            runner.model.train()
            batches = iter(())  # the epoch's last batch was trained on
            if done < len(loop.dataloader):
                batches = iter(loop.dataloader)
                for _ in range(done):
                    next(batches)  # read and dropped: the streams move on
            _set_rng_state(rng)  # as the interrupted run left them
            for idx, data_batch in enumerate(batches, start=done):
                loop.run_iter(idx, data_batch)
            runner.call_hook('after_train_epoch')
            loop._epoch += 1

        loop.run_epoch = run_resumed_epoch
        print_log(
            f'PreemptionHook: resuming epoch {info["epoch"] + 1} after its '
            f'first {done} batches (iteration {info["iter"]}).',
            logger='current')
