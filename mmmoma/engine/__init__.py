"""Training-loop parts: layer-wise learning-rate decay for transfer runs.

Importing this package registers :class:`LayerDecayOptimWrapperConstructor`
in MMSeg's and MMPretrain's ``OPTIM_WRAPPER_CONSTRUCTORS``.
"""
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['LayerDecayOptimWrapperConstructor']
