"""Training-loop parts: lr decay, k-NN evaluation and safety hooks.

Importing this package registers :class:`LayerDecayOptimWrapperConstructor`
in MMSeg's and MMPretrain's ``OPTIM_WRAPPER_CONSTRUCTORS``,
:class:`KNNEvalHook` in MMPretrain's ``HOOKS``, :class:`EpochSeedHook`,
:class:`NonFiniteLossHook`, :class:`PreemptionHook` and
:class:`TargetStatsHook` in MMEngine's
``HOOKS`` and :func:`epoch_worker_init_fn` in its ``FUNCTIONS``.
"""
from .hooks import EpochSeedHook, NonFiniteLossHook, epoch_worker_init_fn
from .knn_eval_hook import KNNEvalHook
from .layer_decay import LayerDecayOptimWrapperConstructor
from .preemption import EXIT_PREEMPTED, PreemptionHook
from .target_stats_hook import TargetStatsHook

__all__ = [
    'EXIT_PREEMPTED', 'EpochSeedHook', 'KNNEvalHook',
    'LayerDecayOptimWrapperConstructor', 'NonFiniteLossHook',
    'PreemptionHook', 'TargetStatsHook', 'epoch_worker_init_fn'
]
