"""MOMA's modules: the registered ones (MMPretrain's MODELS registry) and
the parts of the algorithm."""
from .align_head import SmoothL1AlignHead
from .bn_linear_head import BNLinearHead
from .frozen_teachers import FrozenTeachers
from .moma import MomaAlgorithm
from .moma_neck import MomaNeck
from .moma_vit import MomaViT
from .target_norm import TargetNorm
from .teacher_cache import TeacherCache

__all__ = [
    'BNLinearHead', 'FrozenTeachers', 'MomaAlgorithm', 'MomaNeck', 'MomaViT',
    'SmoothL1AlignHead', 'TargetNorm', 'TeacherCache'
]
