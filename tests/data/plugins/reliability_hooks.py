"""Fault-injection hooks for tests/test_reliability (not part of mmmoma).

Loaded by the training subprocess through
``custom_imports=dict(imports=['mmmoma', 'reliability_hooks'])`` with this
folder on ``PYTHONPATH``.
"""
import os
import signal
import subprocess
import sys

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL this process right after iteration ``iteration`` (1-based)."""

    priority = 'LOWEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonTeacherHook(Hook):
    """Make one teacher output NaN during iteration ``iteration`` only."""

    priority = 'HIGHEST'

    def __init__(self, teacher: str, iteration: int) -> None:
        self.teacher = teacher
        self.iteration = iteration
        self._saved = None

    def _weight(self, runner) -> torch.Tensor:
        model = getattr(runner.model, 'module', runner.model)
        return model.teachers[self.teacher].cls_token

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            weight = self._weight(runner)
            self._saved = weight.detach().clone()
            weight.data.fill_(float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._saved is not None:
            self._weight(runner).data.copy_(self._saved)
            self._saved = None


@HOOKS.register_module()
class InfLossHook(Hook):
    """Make the loss ``key`` +Inf during the given iterations (1-based).

    The teacher's output cannot carry an Inf to the loss (its LayerNorm
    turns Inf into NaN), so this wraps the model's ``loss`` for those
    iterations only.
    """

    priority = 'HIGHEST'

    def __init__(self, key: str, iterations: list) -> None:
        self.key = key
        self.iterations = set(iterations)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 not in self.iterations:
            return
        model = getattr(runner.model, 'module', runner.model)
        loss = model.loss

        def inf_loss(*args, **kwargs):
            losses = loss(*args, **kwargs)
            losses[self.key] = losses[self.key] * float('inf')
            return losses

        model.loss = inf_loss

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        model = getattr(runner.model, 'module', runner.model)
        model.__dict__.pop('loss', None)  # back to the class's method


@HOOKS.register_module()
class DumpTeachersHook(Hook):
    """Save the teachers' weights to ``path`` when training ends, so that a
    test can check them when checkpoints leave them out."""

    priority = 'LOWEST'

    def __init__(self, path: str) -> None:
        self.path = path

    def after_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        torch.save(model.teachers.state_dict(), self.path)


@HOOKS.register_module()
class SignalAtIterHook(Hook):
    """Send ``signal`` to this process's whole process group (as a
    scheduler signals every process of a job: launcher, ranks, dataloader
    workers) as iteration ``iteration`` (1-based) starts, on rank 0 only.

    A separate process sends it, as the scheduler would: PyTorch's
    dataloader workers exit quietly on a SIGTERM from their parent but die
    on one from anyone else. Run the job in its own session, or the group
    is the test's too.
    """

    priority = 'HIGHEST'

    def __init__(self, iteration: int, signal: str = 'SIGTERM') -> None:
        self.iteration = iteration
        self.signal = signal

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration and runner.rank == 0:
            sender = ('import os, signal; '
                      f'os.killpg({os.getpgrp()}, signal.{self.signal})')
            subprocess.run([sys.executable, '-c', sender])
