"""Hooks that keep long runs reproducible and stop them on a bad loss.

Both are registered in MMEngine's root ``HOOKS`` registry, so MMPretrain and
MMSegmentation configs find them by name::

    custom_hooks = [dict(type='EpochSeedHook'),
                    dict(type='NonFiniteLossHook', action='stop')]
"""
import math
import random
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS, HOOKS

# Odd 31-bit multiplier that spreads epochs over the seed space.
_EPOCH_STRIDE = 1_000_003


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, NumPy and PyTorch at the start of every epoch.

    MMEngine seeds once, at start-up, so a run resumed at epoch ``e`` draws
    different augmentations and dropout than the uninterrupted run did. With
    this hook the generators at the start of epoch ``e`` depend only on the
    run's seed and ``e``: a run killed during epoch ``e`` and resumed from
    the checkpoint of epoch ``e - 1`` repeats epoch ``e`` exactly (in
    deterministic mode; with dataloader workers, use
    :func:`epoch_worker_init_fn` and ``persistent_workers=False``, because
    persistent workers keep their own generators across epochs).

    Whatever runs between epochs (validation, k-NN) no longer shifts the
    next epoch's random stream either.
    """

    priority = 'VERY_HIGH'  # before any hook that may draw random numbers

    def before_train_epoch(self, runner) -> None:
        seed = ((int(runner.seed) + _EPOCH_STRIDE * (runner.epoch + 1))
                % (1 << 32))
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # all devices, CUDA included


@FUNCTIONS.register_module()
def epoch_worker_init_fn(worker_id: int) -> None:
    """Seed a dataloader worker's NumPy and ``random`` from torch's seed.

    PyTorch seeds each worker's torch generator with a base seed drawn from
    the main process when the epoch's iterator is created, plus the worker
    id. With :class:`EpochSeedHook` that base seed depends only on the
    run's seed and the epoch, so seeding NumPy and ``random`` from it makes
    worker augmentations differ between epochs yet repeat exactly after a
    resume (with ``persistent_workers=False``). MMEngine's default seeds
    every epoch's workers identically.

    Use as ``train_dataloader = dict(worker_init_fn=dict(
    type='epoch_worker_init_fn'))``.
    """
    seed = torch.initial_seed() % (1 << 32)  # base seed + worker_id
    np.random.seed(seed)
    random.seed(seed)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop (or skip the step) when a loss is NaN or Inf, naming the loss.

    MOMA logs one loss per teacher (``loss_<teacher>``), so the message says
    which teacher's alignment went bad, at which iteration and epoch. The
    check runs after MMEngine has already read the losses for logging, so
    ``action='stop'`` costs no extra synchronisation. The run stops before
    the checkpoint hook of that iteration, so the last checkpoint on disk is
    the last good one.

    Args:
        action (str): ``'stop'`` raises at the first non-finite loss.
            ``'skip'`` checks the total loss before the backward pass and
            skips that step (no backward, no optimizer step, one host sync
            per step); the run stops after ``max_skips`` consecutive skips.
            Defaults to ``'stop'``.
        max_skips (int): Consecutive skipped steps tolerated with
            ``action='skip'``. Defaults to 10.
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW)
    ACTIONS = ('stop', 'skip')

    def __init__(self, action: str = 'stop', max_skips: int = 10) -> None:
        if action not in self.ACTIONS:
            raise ValueError(f'NonFiniteLossHook: action={action!r} is not '
                             f'one of {self.ACTIONS}.')
        if not (isinstance(max_skips, int) and max_skips >= 1):
            raise ValueError(f'NonFiniteLossHook: max_skips={max_skips!r} '
                             'must be an int >= 1.')
        self.action = action
        self.max_skips = max_skips
        self.skipped = 0  # steps skipped in total
        self._streak = 0  # consecutive skipped steps
        self._skipped_now = False

    # --------------------------------------------------------------- skip
    def before_train(self, runner) -> None:
        if self.action != 'skip':
            return
        wrapper = runner.optim_wrapper
        if (not hasattr(wrapper, 'update_params')
                or getattr(wrapper, '_accumulative_counts', 1) != 1):
            raise ValueError(
                "NonFiniteLossHook: action='skip' needs a single optimizer "
                'wrapper without gradient accumulation (accumulative_counts='
                f"{getattr(wrapper, '_accumulative_counts', None)!r}); use "
                "action='stop'.")
        update = wrapper.update_params

        def update_if_finite(loss: torch.Tensor, *args, **kwargs) -> None:
            finite = torch.isfinite(loss.detach()).all().float()
            all_reduce(finite, op='min')  # every rank skips together
            self._skipped_now = not bool(finite.item())
            if self._skipped_now:
                wrapper.zero_grad()
                return
            update(loss, *args, **kwargs)

        wrapper.update_params = update_if_finite

    # --------------------------------------------------------------- check
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[Dict] = None) -> None:
        bad = self._bad_losses(outputs or {})
        if self.action == 'skip':
            if not self._skipped_now and not bad:
                self._streak = 0
                return
            self.skipped += 1
            self._streak += 1
            print_log(
                f'NonFiniteLossHook: skipped iteration {runner.iter + 1} '
                f'(epoch {runner.epoch + 1}): {self._describe(runner, bad)}; '
                f'{self._streak} in a row, {self.skipped} in all.',
                logger='current',
                level=30)
            if self._streak < self.max_skips:
                return
        elif not bad:
            return
        last = runner.message_hub.get_info('last_ckpt')
        kept = ((f'the last checkpoint, {last}, was written before it and '
                 'is intact: resume from it with --resume') if last else
                'no checkpoint had been written yet')
        what = (f'{self._streak} consecutive steps were skipped, the limit'
                if self.action == 'skip' else 'Training stopped')
        raise RuntimeError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): {self._describe(runner, bad)}. {what}; '
            f'{kept}.')

    @staticmethod
    def _bad_losses(outputs: Dict) -> Dict[str, float]:
        """``{name: value}`` of the non-finite losses, agreed by all ranks."""
        names = sorted(k for k in outputs if k.startswith('loss'))
        if len(names) > 1:  # the parts name the culprit; 'loss' is the sum
            names = [k for k in names if k != 'loss']
        if not names:
            return {}
        values = torch.tensor([float(torch.as_tensor(outputs[k]).detach())
                               for k in names],
                              dtype=torch.float64)
        flags = (~torch.isfinite(values)).float()
        all_reduce(flags, op='max')  # a loss that went bad on any rank
        return {
            k: float(values[i])
            for i, k in enumerate(names) if flags[i] > 0
        }

    @staticmethod
    def _describe(runner, bad: Dict[str, float]) -> str:
        if not bad:
            return 'the total loss was not finite'
        model = getattr(runner.model, 'module', runner.model)
        teachers = getattr(model, 'teachers', {})
        parts = []
        for key, value in bad.items():
            name = key[len('loss_'):] if key.startswith('loss_') else None
            who = f' (teacher {name!r})' if name in teachers else ''
            shown = (value if not math.isfinite(value) else
                     'non-finite on another rank')
            parts.append(f'{key}={shown}{who}')
        return ', '.join(parts)
