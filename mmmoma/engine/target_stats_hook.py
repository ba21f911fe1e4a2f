"""TargetStatsHook: a one-pass estimate of teacher-feature statistics."""
import random
from typing import List, Tuple

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch.utils.data import DataLoader, Subset


@HOOKS.register_module()
class TargetStatsHook(Hook):
    """Estimate the statistics of ``target_stats='fixed'`` heads before
    training (adapted from Theia, which standardises each teacher with
    statistics of its features over the dataset).

    Before the first step, the teachers run on a fixed random subset of the
    training set (``num_batches`` batches per process, the train pipeline
    and batch size, a generator of its own); each
    :class:`~mmmoma.models.SmoothL1AlignHead` with ``target_stats='fixed'``
    accumulates its teacher's features over all processes and sets its
    statistics once. They are buffers, saved in checkpoints: a resumed run
    skips the pass. The global random generators are restored afterwards,
    so training draws the same numbers as without the hook.

    Args:
        num_batches (int): Batches per process. Defaults to 50 (choice: 50
            batches of 256 ImageNet crops give 12,800 images, 2.5M patch
            tokens per teacher, enough for a 768 x 768 covariance).
        seed (int): Seed of the subset. Defaults to 0.
    """

    priority = 'LOW'  # after the weights are loaded or resumed

    def __init__(self, num_batches: int = 50, seed: int = 0) -> None:
        if not (isinstance(num_batches, int) and num_batches > 0):
            raise ValueError(f'TargetStatsHook: num_batches={num_batches!r} '
                             'must be a positive int.')
        self.num_batches = num_batches
        self.seed = seed

    @staticmethod
    def pending(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Module]]:
        """``(target key, norm)`` of the fixed-statistics heads not yet
        estimated."""
        heads = getattr(model, 'heads', {})
        return [(key, head.norm) for key, head in heads.items()
                if getattr(head, 'norm', None) is not None
                and head.norm.uses_stats and head.norm.stats == 'fixed'
                and not bool(head.norm.updates.any())]

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        todo = self.pending(model)
        if not todo:
            return
        states = (random.getstate(), np.random.get_state(),
                  torch.get_rng_state(),
                  torch.cuda.get_rng_state_all()
                  if torch.cuda.is_available() else None)
        try:
            count = self._estimate(runner, model, dict(todo))
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
            if states[3] is not None:
                torch.cuda.set_rng_state_all(states[3])
        print_log(
            f'TargetStatsHook: statistics of {sorted(dict(todo))} from '
            f'{count} images per process (target_stats=\'fixed\').',
            logger='current')

    @torch.no_grad()
    def _estimate(self, runner, model, norms: dict) -> int:
        loader = runner.train_dataloader
        rank, world = get_dist_info()
        size = len(loader.dataset)
        per_rank = min(self.num_batches * loader.batch_size, size // world)
        if per_rank < 1:
            raise ValueError(
                f'TargetStatsHook: the training set has {size} samples, '
                f'fewer than the {world} processes.')
        order = torch.randperm(
            size, generator=torch.Generator().manual_seed(self.seed))
        mine = order[rank * per_rank:(rank + 1) * per_rank].tolist()
        subset = DataLoader(
            Subset(loader.dataset, mine),
            batch_size=loader.batch_size,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn)
        was_training = model.training
        model.eval()
        for batch in subset:
            data = model.data_preprocessor(batch, True)
            images = data['inputs']
            images = images[0] if isinstance(images, (list, tuple)) else images
            visible = torch.ones(
                images.shape[0], model.num_patches, dtype=torch.bool,
                device=images.device)
            for name in model.teachers:
                targets, _ = model.teacher_targets(name, images)
                for key, target in targets.items():
                    if key in norms:
                        norms[key].accumulate(
                            target, model.valid_positions(key, visible))
        for norm in norms.values():
            norm.finish()
        model.train(was_training)
        return len(mine)
