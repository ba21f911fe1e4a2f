"""mmmoma: MOMA distillation of MoCo v3 and MAE teachers on MMPretrain."""
from . import compat

# First: the fixes must be in place before mmpretrain / mmseg are imported.
compat.apply_all()

from .datasets import (FashionMNISTIdx,  # noqa: E402
                       FastRandomResizedCrop)
from .engine import (EpochSeedHook,  # noqa: E402
                     LayerDecayOptimWrapperConstructor, NonFiniteLossHook)
from .evaluation import KNNEvalHook, knn_evaluate  # noqa: E402
from .models import (MomaAlgorithm, MomaNeck, MomaViT,  # noqa: E402
                     SmoothL1AlignHead)
from .version import __version__  # noqa: E402

__all__ = [
    '__version__', 'compat', 'EpochSeedHook', 'FashionMNISTIdx',
    'FastRandomResizedCrop', 'KNNEvalHook', 'knn_evaluate',
    'LayerDecayOptimWrapperConstructor', 'MomaAlgorithm', 'MomaNeck',
    'MomaViT', 'NonFiniteLossHook', 'SmoothL1AlignHead'
]
