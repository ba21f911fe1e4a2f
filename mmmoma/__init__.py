"""mmmoma: MOMA distillation of MoCo v3 and MAE teachers on MMPretrain."""
from . import compat

compat.apply_all()

from .models import MomaAlgorithm, MomaNeck, SmoothL1AlignHead  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    '__version__', 'compat', 'MomaAlgorithm', 'MomaNeck', 'SmoothL1AlignHead'
]
