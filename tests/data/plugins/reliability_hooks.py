"""Fault-injection hooks for tests/test_reliability (not part of mmmoma).

Loaded by the training subprocess through
``custom_imports=dict(imports=['mmmoma', 'reliability_hooks'])`` with this
folder on ``PYTHONPATH``.
"""
import os
import signal

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
