"""Registered MOMA modules (MMPretrain's MODELS registry)."""
from .align_head import SmoothL1AlignHead
from .moma import MomaAlgorithm
from .moma_neck import MomaNeck
from .moma_vit import MomaViT

__all__ = ['MomaAlgorithm', 'MomaNeck', 'MomaViT', 'SmoothL1AlignHead']
