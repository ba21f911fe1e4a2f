"""Speed options of MomaAlgorithm: teacher dtype names and torch.compile.

None of them changes what is computed: see ``MomaAlgorithm``'s
``teacher_dtype``, ``teacher_inference_mode`` and ``compile``.
"""
from typing import Callable, Dict, Optional, Union

import numpy as np
import torch
from torch import nn

TEACHER_DTYPES = {
    'float32': torch.float32,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16
}
COMPILE_PARTS = ('teachers', 'backbone', 'necks', 'heads')


def check_compile(compile: Union[bool, dict, None]) -> Optional[dict]:
    """Validate MomaAlgorithm's ``compile`` option.

    Args:
        compile (bool | dict | None): ``True``, or ``torch.compile``
            arguments plus ``parts`` (a subset of :data:`COMPILE_PARTS`).

    Returns:
        dict | None: ``dict(parts=..., **torch.compile arguments)`` with
        ``dynamic`` defaulting to False, or None when nothing is compiled.
    """
    if compile is False or compile is None:
        return None
    if not isinstance(compile, (bool, dict)):
        raise ValueError(
            f'MomaAlgorithm: compile={compile!r} must be a bool or a dict '
            'of torch.compile arguments (with optional parts).')
    kwargs = {} if compile is True else dict(compile)
    parts = kwargs.pop('parts', COMPILE_PARTS)
    parts = (parts, ) if isinstance(parts, str) else tuple(parts)
    unknown = [p for p in parts if p not in COMPILE_PARTS]
    if unknown or not parts:
        raise ValueError(
            f'MomaAlgorithm: compile parts={parts!r} must be a non-empty '
            f'subset of {COMPILE_PARTS}.')
    # A block kind sees several token counts (197 in a teacher, 20 in the
    # student): one static graph each, not a dynamic-shape one.
    kwargs.setdefault('dynamic', False)
    return dict(parts=parts, **kwargs)


def compile_parts(model: nn.Module, cfg: dict) -> Dict[str, Callable]:
    """``torch.compile`` the parts of a MomaAlgorithm named in ``cfg``.

    Transformer blocks are compiled one by one (blocks of one shape share a
    graph), a non-ViT teacher whole, each neck whole; compilation happens
    lazily at the first call.

    Args:
        model (nn.Module): The MomaAlgorithm (``teachers``, ``backbone``,
            ``necks``, ``heads``).
        cfg (dict): From :func:`check_compile`.

    Returns:
        dict[str, Callable]: ``{teacher name: compiled head.loss}`` when
        ``'heads'`` is a part, else empty.
    """
    kwargs = {k: v for k, v in cfg.items() if k != 'parts'}
    for module in model.modules():
        # MMPretrain's ViTs give DropPath numpy rates (np.linspace); dynamo
        # makes tensors of them whose guards fail under inference mode. The
        # same value as a Python float.
        if isinstance(getattr(module, 'drop_prob', None), np.generic):
            module.drop_prob = float(module.drop_prob)
    head_losses = {}
    for part in cfg['parts']:
        if part == 'heads':
            head_losses = {
                name: torch.compile(head.loss, **kwargs)
                for name, head in model.heads.items()
            }
        elif part == 'necks':
            for neck in model.necks.values():
                neck.compile(**kwargs)
        else:
            nets = (model.teachers.values()
                    if part == 'teachers' else [model.backbone])
            for net in nets:  # ViT blocks, or a non-ViT teacher whole
                for block in getattr(net, 'layers', None) or [net]:
                    block.compile(**kwargs)
    return head_losses
