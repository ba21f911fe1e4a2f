"""Training compute of a study run, in FLOPs, for the equal-compute
comparisons of protocol v2.

One training step of the run's own config is counted with the benchmark's
counter (:func:`~mmmoma.apis.benchmark.flops.count_flops`: every aten op,
forward and backward, the frozen teachers' forward included) on a synthetic
batch of the run's size, then scaled to the run's images. What is not
counted: the k-NN monitor and the evaluations (not training), the data
pipeline, and, for a student, its teachers' (or its initialisation's)
pretraining, which the teacher rows report on their own.
"""
import argparse
from typing import Dict, List, Optional

import torch

from ..benchmark.flops import count_flops
from ..benchmark.step import (build, count_views, record_schedule_position,
                              synthetic_batch)
from ..launch import load_config

#: ``build``'s options: float32 weights of random init, no speed settings.
_BUILD = argparse.Namespace(keep_weights=False, amp='none', fast=False)


def step_flops(config: str, batch_size: int) -> Dict[str, float]:
    """FLOPs per image of one training step of ``config``.

    The model is built with ``teacher_cache=None`` so that the teachers run
    in the counted step; :func:`run_flops` accounts for a cache.

    Args:
        config (str): A run's config file.
        batch_size (int): Images per step.

    Returns:
        dict[str, float]: ``step`` (forward + backward, teachers included)
        and ``teachers`` (their forward alone; 0 for a model without
        teachers), per image.
    """
    cfg = load_config(config)
    if 'teacher_cache' in cfg.model:
        cfg.model.teacher_cache = None
    device = torch.device('cpu')
    model, optim_wrapper = build(cfg, _BUILD, device)
    record_schedule_position()
    data = synthetic_batch(model, batch_size, device, count_views(cfg))
    split = count_flops(model, optim_wrapper, data)
    return dict(step=split['total'] / batch_size,
                teachers=split.get('forward_teachers', 0.0) / batch_size)


def run_flops(per_image: Dict[str, float], epoch_images: int, epochs: int,
              teacher_cache: bool) -> List[float]:
    """Cumulative training FLOPs at the end of each epoch.

    With ``teacher_cache`` every sample's targets are computed in the first
    epoch only (the study's deterministic pipeline sees every sample once
    per epoch), so later epochs cost the step without the teachers.

    Args:
        per_image (dict): :func:`step_flops`'s.
        epoch_images (int): Images per epoch.
        epochs (int): Epochs trained.
        teacher_cache (bool): Whether the run caches its teachers' targets.

    Returns:
        list[float]: ``epochs + 1`` values, from 0 (before training).
    """
    first = per_image['step'] * epoch_images
    later = (per_image['step'] -
             (per_image['teachers'] if teacher_cache else 0.0)) * epoch_images
    return [0.0] + [first + later * e for e in range(epochs)]


def flops_at(curve: List[float], cumulative: List[float],
             budget: float) -> Optional[float]:
    """A monitor curve (one value per epoch, from epoch 0) read at
    ``budget`` FLOPs, linearly between epochs; None past the run's end.

    Args:
        curve (list[float]): The metric after each epoch, ``curve[0]``
            before training.
        cumulative (list[float]): :func:`run_flops`'s, as long as ``curve``.
        budget (float): The FLOPs to read it at, >= 0.
    """
    if len(curve) != len(cumulative):
        raise ValueError(f'flops_at: a curve of {len(curve)} values needs '
                         f'as many cumulative FLOPs, got {len(cumulative)}.')
    if budget > cumulative[-1]:
        return None
    for e in range(1, len(curve)):
        if budget <= cumulative[e]:
            lo, hi = cumulative[e - 1], cumulative[e]
            t = (budget - lo) / (hi - lo) if hi > lo else 1.0
            return curve[e - 1] + t * (curve[e] - curve[e - 1])
    return curve[0]
