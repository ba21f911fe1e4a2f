"""Strict, early-failing weight loading for frozen teachers and the student.

MMEngine's ``Pretrained`` initialiser loads non-strictly and only logs what
it skipped, so a teacher whose checkpoint does not fit would silently stay
random. Here every ``Pretrained`` ``init_cfg`` of a teacher or of the student
goes through :func:`load_pretrained`, which fails on any missing, unexpected
or mis-shaped key.
"""
import os
import zipfile
from collections import OrderedDict
from typing import Dict, Optional

import torch
from torch import nn

from ..fileio import REMOTE_PREFIXES, check_finite, load_checkpoint


def is_pretrained_cfg(init_cfg) -> bool:
    """Whether ``init_cfg`` is a single ``Pretrained`` initialiser."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


_TEACHER_HINT = (
    'Give the path of a PyTorch checkpoint (convert official MAE / MoCo v3 '
    'files with tools/model_converters/official_to_mmpretrain.py) or an URL.')


def check_checkpoint_file(path: str, where: str,
                          hint: str = _TEACHER_HINT) -> None:
    """Fail early when a local checkpoint path is missing or not a checkpoint.

    Args:
        path (str): The ``checkpoint`` value of an ``init_cfg``.
        where (str): The config key, for the error message.
        hint (str): What to give instead, appended to the message.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f'{where}={path!r}: no checkpoint given. {hint}')
    if path.startswith(REMOTE_PREFIXES):
        return
    local = os.path.expanduser(path)
    if os.path.isdir(local):
        raise IsADirectoryError(f'{where}={path!r} is a folder, not a '
                                f'checkpoint file. {hint}')
    if not os.path.isfile(local):
        raise FileNotFoundError(f'{where}={path!r}: no such file. {hint}')
    with open(local, 'rb') as f:
        head = f.read(4)
    # torch.save writes a zip archive; the legacy format starts with the
    # pickle protocol opcode 0x80.
    if zipfile.is_zipfile(local) or head[:1] == b'\x80':
        return
    if not head:
        problem = 'the file is empty'
    elif head == b'PK\x03\x04':
        # A zip archive without its central directory: cut short.
        problem = 'a truncated zip archive (an interrupted download?)'
    else:
        problem = f'the file starts with {head!r}'
    raise ValueError(
        f'{where}={path!r} is not a PyTorch checkpoint: {problem}. Allowed: '
        'a complete torch.save file (a zip archive or a legacy pickle). '
        f'{hint}')


_ALLOWED_SOURCES = (
    "Allowed: a checkpoint with the backbone under the prefix (MOMA, MAE and "
    "MoCo v3 Runner checkpoints and extract_student.py outputs keep it under "
    "'backbone.'; a teacher or neck is not a student), an official MAE / "
    "MoCo v3 file with format='mae' / 'mocov3', or a bare ViT state dict "
    "with prefix=''.")


def _extract_state_dict(checkpoint, prefix: str, where: str,
                        path: str) -> Dict[str, torch.Tensor]:
    state = (checkpoint.get('state_dict', checkpoint)
             if isinstance(checkpoint, dict) else None)
    if not isinstance(state, dict):
        raise ValueError(f'{where}.checkpoint={path!r} holds a '
                         f'{type(checkpoint).__name__}, not a state dict. '
                         f'{_ALLOWED_SOURCES}')
    picked = OrderedDict(
        (k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))
    if not picked:
        found = sorted({k.split('.', 1)[0] + '.' for k in state})
        raise ValueError(
            f'{where}.checkpoint={path!r} has no weights under '
            f'{where}.prefix={prefix!r}: its keys start with {found[:8]}. '
            f'{_ALLOWED_SOURCES}')
    others = [k for k, v in picked.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise ValueError(
            f'{where}.checkpoint={path!r} is not a state dict: under '
            f'{where}.prefix={prefix!r} it holds {len(others)} entries that '
            f'are not tensors ({others[:8]}). {_ALLOWED_SOURCES}')
    return picked


def _check_format(init_cfg: dict, where: str) -> None:
    from ..converters import FORMATS
    fmt = init_cfg.get('format')
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f'{where}.format={fmt!r} is not supported; '
                         f'allowed: {FORMATS} or None (an MMPretrain '
                         'checkpoint read under prefix).')


def read_state_dict(init_cfg: dict, where: str,
                    hint: str = _TEACHER_HINT) -> Dict[str, torch.Tensor]:
    """Read the backbone weights a ``Pretrained`` init_cfg points at.

    The file is read with ``weights_only=True`` (a foreign file must not run
    code; MMEngine Runner checkpoints pass through the allowlist of
    :mod:`mmmoma.checkpoint_safety`). With ``format='mae'`` or
    ``format='mocov3'`` an official checkpoint is converted on the fly
    (``prefix`` is then unused).

    Args:
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=...,
            prefix=...)``
            or ``dict(type='Pretrained', checkpoint=..., format=...)``.
        where (str): The config key of ``init_cfg``, for error messages.
        hint (str): What to give instead of a missing checkpoint.

    Returns:
        dict[str, torch.Tensor]: The weights, prefix removed.

    Raises:
        ValueError: The file is not such a checkpoint, or a tensor holds NaN
            or Inf (named).
    """
    path = init_cfg.get('checkpoint')
    check_checkpoint_file(path, f'{where}.checkpoint', hint)
    _check_format(init_cfg, where)
    checkpoint = load_checkpoint(path, f'{where}.checkpoint')
    fmt = init_cfg.get('format')
    if fmt is None:
        prefix = init_cfg.get('prefix') or ''
        state = _extract_state_dict(checkpoint, prefix, where, path)
        check_finite(state, f'{where}.checkpoint={path!r} (under '
                     f'{where}.prefix={prefix!r})')
        return state
    from ..converters import convert_official
    try:
        state = convert_official(checkpoint, fmt)
    except ValueError as err:
        raise ValueError(f'{where}: {err}') from err
    check_finite(state, f'{where}.checkpoint={path!r} (format={fmt!r}, '
                 'tensors in MMPretrain names)')
    return state


def load_pretrained(module: nn.Module, init_cfg: dict, where: str) -> None:
    """Load ``init_cfg['checkpoint']`` into ``module`` strictly.

    See :func:`read_state_dict` for what the checkpoint may be.
    ``pos_embed`` may differ in grid size: MMPretrain's ViT resizes it on
    load.

    Args:
        module (nn.Module): The backbone to fill.
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=...,
            prefix=...)``
            or ``dict(type='Pretrained', checkpoint=..., format=...)``.
        where (str): The config key of ``init_cfg``, for error messages.
    """
    path = init_cfg['checkpoint']
    state = read_state_dict(init_cfg, where)
    own = module.state_dict()
    mis_shaped = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state.items() if k in own and k != 'pos_embed'
        and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if mis_shaped or missing or unexpected:
        lines = [f'{where}.checkpoint={path!r} does not fit the configured '
                 f'{type(module).__name__} (check arch / patch_size / '
                 'img_size); allowed: the weights of exactly this '
                 'architecture:']
        for title, keys in (('mis-shaped', mis_shaped), ('missing', missing),
                            ('unexpected', unexpected)):
            if keys:
                shown = '; '.join(keys[:8])
                more = f' (+{len(keys) - 8} more)' if len(keys) > 8 else ''
                lines.append(f'  {title}: {shown}{more}')
        raise ValueError('\n'.join(lines))
    module.load_state_dict(state, strict=True)


def pop_pretrained(cfg: dict, where: str) -> Optional[dict]:
    """Take a ``Pretrained`` init_cfg out of a module config, checked early.

    Returns:
        dict | None: The removed init_cfg, or None when there was none.
    """
    init_cfg = cfg.get('init_cfg')
    if not is_pretrained_cfg(init_cfg):
        return None
    cfg.pop('init_cfg')
    check_checkpoint_file(init_cfg.get('checkpoint'), f'{where}.checkpoint')
    _check_format(init_cfg, where)
    return dict(init_cfg)
