"""mmmoma: MOMA distillation of MoCo v3 and MAE teachers on MMPretrain."""
from . import compat

# First: the fixes must be in place before mmpretrain / mmseg are imported.
compat.apply_all()

from .datasets import (CheckedLoadAnnotations,  # noqa: E402
                       CheckedLoadImageFromFile, FashionMNISTIdx,
                       FashionMNISTMosaics, FastRandomResizedCrop, MNIST5k)
from .engine import (EpochSeedHook, KNNEvalHook,  # noqa: E402
                     LayerDecayOptimWrapperConstructor, NonFiniteLossHook,
                     PreemptionHook, TargetStatsHook)
from .evaluation import knn_evaluate  # noqa: E402
from .models import (BNLinearHead, FrozenTeachers,  # noqa: E402
                     MomaAlgorithm, MomaNeck, MomaViT, SmoothL1AlignHead,
                     TargetNorm, TeacherCache)
from .version import __version__  # noqa: E402

__all__ = [
    '__version__', 'BNLinearHead', 'CheckedLoadAnnotations',
    'CheckedLoadImageFromFile', 'compat', 'EpochSeedHook', 'FashionMNISTIdx',
    'FashionMNISTMosaics', 'FastRandomResizedCrop', 'FrozenTeachers',
    'KNNEvalHook', 'knn_evaluate', 'LayerDecayOptimWrapperConstructor',
    'MNIST5k', 'MomaAlgorithm', 'MomaNeck', 'MomaViT', 'NonFiniteLossHook',
    'PreemptionHook', 'SmoothL1AlignHead', 'TargetNorm', 'TargetStatsHook',
    'TeacherCache'
]
