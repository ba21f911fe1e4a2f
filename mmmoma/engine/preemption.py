"""Stop on a scheduler's signal with a checkpoint, resume mid-epoch exactly.

Slurm (``--signal=TERM@120``) and cloud schedulers send a signal shortly
before they kill a job. :class:`PreemptionHook` turns it into a clean stop:
every rank finishes its current iteration, one checkpoint records where in
the epoch the run stopped, and the job exits with :data:`EXIT_PREEMPTED`.
``tools/train.py CONFIG --resume`` then continues with exactly the batches
that were left. Register it in ``custom_hooks``::

    custom_hooks = [dict(type='PreemptionHook', signal='SIGTERM')]

Under ``torchrun`` the launcher reports any failed worker as exit code 1;
``tools/dist_train.sh`` runs it through :func:`torchrun`, which exits with
the workers' preemption code instead.
"""
import glob
import os
import os.path as osp
import random
import re
import signal as signals
import sys
import tempfile
import threading
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, barrier, get_rank,
                           get_world_size, is_main_process)
from mmengine.hooks import CheckpointHook, Hook
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
#: Environment variable naming a file that a preempted run writes (from the
#: first process of each node): ``"<exit code> <checkpoint>"``. A launcher
#: that reports its workers' exit codes as its own (``torchrun``: always 1)
#: reads it to exit with the preemption code (:func:`torchrun`,
#: ``tools/slurm_train.sh``).
MARKER_ENV = 'MMMOMA_PREEMPTED_FILE'
_PREEMPTED = re.compile(r'preempted_iter_(\d+)\.pth')


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


def write_marker(exit_code: int, checkpoint: str) -> None:
    """Tell the launcher that this node's processes stop for preemption.

    Writes ``"<exit_code> <checkpoint>"`` to the file named by
    :data:`MARKER_ENV`, from the first process of each node (``LOCAL_RANK``
    0); does nothing when the variable is not set.

    Args:
        exit_code (int): The code the processes exit with.
        checkpoint (str): The checkpoint they wrote.
    """
    marker = os.environ.get(MARKER_ENV)
    if not marker or os.environ.get('LOCAL_RANK', '0') != '0':
        return
    with atomic_write(marker, 'w') as f:
        f.write(f'{exit_code} {checkpoint}\n')


def read_marker(path: str) -> Optional[int]:
    """The exit code that :func:`write_marker` wrote to ``path``, or None
    when it wrote nothing (an empty or missing file, or no code in 1..255).
    """
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return None
    if not words or not words[0].isdigit() or not 1 <= int(words[0]) <= 255:
        return None
    return int(words[0])


def torchrun(argv: Optional[List[str]] = None) -> int:
    """``torchrun`` that exits with the code of preempted workers.

    torchrun's elastic agent ends with exit code 1 when a worker fails,
    whatever the worker's code, and also when the agent itself was
    signalled (after forwarding the signal to its workers and waiting for
    them). A scheduler's requeue rule cannot tell a preempted job from a
    crashed one. This runs ``torch.distributed.run`` in this process (the
    same signals reach it) with :data:`MARKER_ENV` set for its workers;
    when it fails and a worker wrote the marker, it returns that code
    (:data:`EXIT_PREEMPTED`) instead.

    Args:
        argv (list[str], optional): torchrun's arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        int: 0 when torchrun succeeded, else the preemption code; any other
        failure is raised as torchrun raises it.
    """
    from torch.distributed import run as torch_run
    fd, marker = tempfile.mkstemp(prefix='mmmoma-preempted-', suffix='.txt')
    os.close(fd)
    os.environ[MARKER_ENV] = marker  # the workers inherit it
    try:
        try:
            torch_run.main(argv)
        except BaseException:  # ChildFailedError, SignalException, ...
            code = read_marker(marker)
            if code is None:
                raise
            with open(marker) as f:
                saved = f.read().split(maxsplit=1)[-1].strip()
            print(
                f'torchrun: the workers were preempted and saved {saved}; '
                f'exiting with code {code} (not torchrun\'s 1). Continue '
                'with the same command and --resume.',
                file=sys.stderr)
            return code
        return 0
    finally:
        os.environ.pop(MARKER_ENV, None)
        os.unlink(marker)


def remove_superseded(work_dir: str, latest: Optional[str],
                      upto: int) -> List[str]:
    """Remove the ``preempted_iter_<N>.pth`` files that a newer checkpoint
    replaces.

    Args:
        work_dir (str): The folder the preemption checkpoints are in.
        latest (str, optional): The checkpoint ``last_checkpoint`` points
            at; never removed.
        upto (int): The iteration of ``latest``; a file of a later
            iteration (of another run) is kept.

    Returns:
        list[str]: The removed files.
    """
    removed = []
    for path in sorted(glob.glob(osp.join(work_dir, 'preempted_iter_*.pth'))):
        match = _PREEMPTED.fullmatch(osp.basename(path))
        if (match is None or int(match.group(1)) > upto or latest is not None
                and osp.abspath(path) == osp.abspath(latest)):
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


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

    A preemption checkpoint is removed as soon as a newer checkpoint
    replaces it in ``last_checkpoint`` (the resumed run's next
    ``CheckpointHook`` save, or the next preemption), unless the
    ``CheckpointHook`` keeps every checkpoint (``max_keep_ckpts`` <= 0). The
    one just written, and the one a run resumed from, stay until then.
    With :data:`MARKER_ENV` set, the first process of each node also writes
    that file before exiting (:func:`write_marker`).

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
        # The checkpoint last_checkpoint pointed at when last looked at.
        self._latest: Optional[str] = None

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
        # after a resume: what the resumed checkpoint's message hub holds
        self._latest = runner.message_hub.get_info('last_ckpt')
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
            # CheckpointHook (by iteration) has run: it may have saved
            self._clean_up(runner, runner.iter + 1)
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
        self._clean_up(runner, step)
        barrier()  # no rank exits before the checkpoint is on disk
        write_marker(self.exit_code, path)
        print_log(
            f'PreemptionHook: {self.signum.name} received; stopped after '
            f'iteration {step} (epoch {epoch + 1}, batch {done} of '
            f'{len(runner.train_loop.dataloader)}) and saved {path}. '
            f'Exiting with code {self.exit_code}; continue with '
            'tools/train.py CONFIG --resume.',
            logger='current',
            level=30)
        raise SystemExit(self.exit_code)

    def after_train_epoch(self, runner) -> None:
        self._clean_up(runner, runner.iter)  # after CheckpointHook's save

    def _clean_up(self, runner, upto: int) -> None:
        """Remove the preemption checkpoints older than a new
        ``last_checkpoint`` target, if CheckpointHook limits the number
        of checkpoints kept."""
        latest = runner.message_hub.get_info('last_ckpt')
        if latest == self._latest:
            return
        self._latest = latest
        keeps_all = any(
            isinstance(hook, CheckpointHook) and hook.max_keep_ckpts <= 0
            for hook in runner.hooks)
        if is_main_process() and not keeps_all:
            for path in remove_superseded(runner.work_dir, latest, upto):
                print_log(
                    f'PreemptionHook: removed {path}, replaced by {latest}.',
                    logger='current')

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
