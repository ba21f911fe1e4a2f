"""Training-loop parts: layer-wise lr decay, reproducibility and loss hooks.

Importing this package registers :class:`LayerDecayOptimWrapperConstructor`
in MMSeg's and MMPretrain's ``OPTIM_WRAPPER_CONSTRUCTORS``,
:class:`EpochSeedHook` and :class:`NonFiniteLossHook` in MMEngine's
``HOOKS`` and :func:`epoch_worker_init_fn` in its ``FUNCTIONS``.
"""
from .hooks import EpochSeedHook, NonFiniteLossHook, epoch_worker_init_fn
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = [
    'EpochSeedHook', 'LayerDecayOptimWrapperConstructor', 'NonFiniteLossHook',
    'epoch_worker_init_fn'
]
