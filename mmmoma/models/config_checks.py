"""Checks of MomaAlgorithm's arguments (at build time) and input: each names
the argument, the value and what is allowed."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models import VisionTransformer
from torch import nn

from .utils import num_visible_tokens


def per_teacher(cfg: dict, names: List[str], key: str) -> Dict[str, dict]:
    """Expand a shared module config (has ``type``) or check a per-name one.

    Args:
        cfg (dict): One config with a ``type``, or ``{name: config}``.
        names (list[str]): The teacher names.
        key (str): The argument (``'neck'`` or ``'head'``), for errors.

    Returns:
        dict[str, dict]: A deep copy of the config for each teacher.
    """
    if 'type' in cfg:
        return {name: copy.deepcopy(cfg) for name in names}
    if set(cfg) != set(names):
        raise ValueError(
            f'MomaAlgorithm: {key} must be one config with a "type" (shared '
            f'by all teachers) or one config per teacher {sorted(names)}; '
            f'got keys {sorted(cfg)}.')
    return {name: copy.deepcopy(cfg[name]) for name in names}


def check_mask_ratio(mask_ratio: float) -> float:
    """``mask_ratio`` as a float in the open interval (0, 1)."""
    if not (isinstance(mask_ratio, (int, float)) and 0 < mask_ratio < 1):
        raise ValueError(f'MomaAlgorithm: mask_ratio={mask_ratio!r} must '
                         'be a number in the open interval (0, 1).')
    return float(mask_ratio)


def check_loss_weights(weights: Optional[Dict[str, float]],
                       names: List[str]) -> Dict[str, float]:
    """``{teacher: weight}``, the average over teachers when None."""
    if weights is None:
        return {name: 1.0 / len(names) for name in names}
    unknown = [k for k in weights if k not in names]
    if unknown:
        raise ValueError(
            f'MomaAlgorithm: loss_weights names unknown teacher(s) '
            f'{unknown}; configured teachers: {names}.')
    bad = {
        k: v
        for k, v in weights.items()
        if not (isinstance(v, (int, float)) and v >= 0)
    }
    if bad or not sum(weights.values()) > 0:
        raise ValueError(
            f'MomaAlgorithm: loss_weights={dict(weights)!r} must be >= 0 '
            'with a positive sum.')
    return {name: float(weights.get(name, 0.0)) for name in names}


def check_teacher_names(teachers: Dict[str, dict]) -> List[str]:
    """The teacher names; at least one teacher."""
    if not teachers:
        raise ValueError(
            f'MomaAlgorithm: teachers is empty (teachers={teachers!r}); '
            "configure at least one, e.g. teachers=dict(mae=dict(type="
            "'mmpretrain.VisionTransformer', arch='b', init_cfg=...)).")
    return list(teachers)


def check_visible_patches(mask_ratio: float, num_patches: int) -> None:
    """``mask_ratio`` leaves at least one of ``num_patches`` visible."""
    if num_visible_tokens(num_patches, mask_ratio) < 1:
        raise ValueError(
            f'MomaAlgorithm: mask_ratio={mask_ratio!r} leaves no visible '
            f'patch out of {num_patches}; use a ratio below '
            f'{1 - 1 / num_patches:.4f}.')


def check_student(backbone: nn.Module) -> None:
    """An MMPretrain ViT, all trained: nothing frozen but ``pos_embed``."""
    if not isinstance(backbone, VisionTransformer):
        raise TypeError(
            'MomaAlgorithm: backbone must be an MMPretrain ViT (e.g. '
            f"'mmpretrain.MAEViT'); got {type(backbone).__name__}.")
    frozen = [
        n for n, p in backbone.named_parameters()
        if not p.requires_grad and n != 'pos_embed'
    ]
    if frozen:
        raise ValueError(
            f'MomaAlgorithm: student parameters {frozen[:4]} are frozen '
            '(stop_grad_conv1 / frozen_stages); MOMA trains the whole '
            'student, patch embedding included.')


def fill_neck_cfg(cfg: dict, name: str, student_dims: int,
                  teacher_dims: int, patch_resolution: Tuple[int,
                                                             int]) -> dict:
    """Fill in a neck's widths and grid when absent; check them if given.

    Args:
        cfg (dict): The neck config of teacher ``name``; edited in place.
        name (str): The teacher.
        student_dims (int): The student width Cs.
        teacher_dims (int): The teacher width Ct.
        patch_resolution (tuple[int, int]): The student grid.

    Returns:
        dict: ``cfg``.
    """
    for key, value in (('in_channels', student_dims),
                       ('out_channels', teacher_dims),
                       ('patch_resolution', patch_resolution)):
        given = cfg.setdefault(key, value)
        if key == 'patch_resolution' and isinstance(given, int):
            given = (given, given)
        if (tuple(given) if key == 'patch_resolution' else given) != value:
            owner = 'teacher' if key == 'out_channels' else 'student'
            raise ValueError(
                f'MomaAlgorithm: neck for teacher {name!r} has '
                f'{key}={given!r}, but the {owner} needs {value!r}; '
                f'remove it or set it to {value!r}.')
    return cfg


def check_positions(name: str, head: nn.Module, neck: nn.Module,
                    mask_teacher_input: bool) -> None:
    """A head's ``positions='masked'`` needs targets and predictions there."""
    if getattr(head, 'positions', 'all') != 'masked':
        return
    if not neck.predicts_masked:
        raise ValueError(
            f"MomaAlgorithm: head for teacher {name!r} uses "
            f"positions='masked' but its neck (mode={neck.mode!r}) predicts "
            "visible tokens only; use neck mode='decoder' or positions "
            "'visible'/'all'.")
    if mask_teacher_input:
        raise ValueError(
            "MomaAlgorithm: positions='masked' has no targets with "
            'mask_teacher_input=True (teachers only see visible '
            "patches); use positions 'visible' or 'all'.")


def check_patch_grid(cfg: dict, where: str) -> None:
    """``img_size`` and ``patch_size`` of a ViT config give a whole grid."""
    img_size = cfg.get('img_size', 224)
    patch_size = cfg.get('patch_size', 16)
    if not (isinstance(patch_size, int) and patch_size > 0):
        raise ValueError(f'{where}.patch_size={patch_size!r} must be a '
                         'positive int.')
    sizes = img_size if isinstance(img_size, (tuple, list)) else (img_size, )
    if not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f'{where}.img_size={img_size!r} must be a positive '
                         'int or a pair of them.')
    if any(s % patch_size for s in sizes):
        raise ValueError(
            f'{where}.img_size={img_size!r} is not divisible by '
            f'{where}.patch_size={patch_size!r}; use an image size that is a '
            'multiple of the patch size.')


def check_input_grid(images: torch.Tensor, vit: nn.Module,
                     patch_resolution: Tuple[int, int]) -> None:
    """(B, 3, H, W) ``images`` give the patch grid ``vit`` was built for."""
    stride = vit.patch_embed.projection.stride
    grid = (images.shape[-2] // stride[0], images.shape[-1] // stride[1])
    if grid != patch_resolution:
        raise RuntimeError(
            f'MomaAlgorithm: input images of size {tuple(images.shape[-2:])} '
            f'give a {grid} patch grid, but the model was built for '
            f'{patch_resolution}; set img_size in the model to the crop size '
            'of the pipeline.')


#: ``teacher_balance`` types of MomaAlgorithm.
BALANCES = ('average', 'drop', 'uncertainty')
#: ``layer_fusion`` values of MomaAlgorithm.
LAYER_FUSIONS = ('separate', 'mean')
#: Head norms that need the teacher width (and grid) at build time.
STAT_NORMS = ('channel', 'position', 'phi_s')


def check_balance(cfg: Optional[dict]) -> dict:
    """``teacher_balance`` as ``dict(type=..., p=...)``; None: average."""
    cfg = dict(type='average') if cfg is None else dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in BALANCES:
        raise ValueError(
            f'MomaAlgorithm: teacher_balance.type={kind!r} is not supported; '
            f'allowed: {BALANCES}.')
    allowed = {'drop': {'p'}}.get(kind, set())
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(
            f'MomaAlgorithm: teacher_balance={dict(cfg, type=kind)!r} has '
            f'unknown keys {unknown}; type {kind!r} takes '
            f'{sorted(allowed) or "no other keys"}.')
    if kind == 'drop':
        p = cfg.setdefault('p', 0.5)
        if not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise ValueError(f'MomaAlgorithm: teacher_balance.p={p!r} must '
                             'be a number in [0, 1].')
        cfg['p'] = float(p)
    return dict(type=kind, **cfg)


def check_layer_fusion(fusion: str) -> str:
    """``layer_fusion`` of a multi-layer teacher."""
    if fusion not in LAYER_FUSIONS:
        raise ValueError(
            f'MomaAlgorithm: layer_fusion={fusion!r} is not supported; '
            f'allowed: {LAYER_FUSIONS}.')
    return fusion


def check_mask_guide(cfg: Optional[dict], names: List[str],
                     has_cls_token: Dict[str, bool],
                     mask_teacher_input: bool) -> Optional[dict]:
    """``mask_guide``: ``dict(teacher=name, random_share=0.5)`` or None."""
    if cfg is None:
        return None
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - {'teacher', 'random_share'})
    if unknown:
        raise ValueError(
            f'MomaAlgorithm: mask_guide has unknown keys {unknown}; allowed: '
            "['random_share', 'teacher'].")
    teacher = cfg.get('teacher')
    if teacher not in names or not has_cls_token[teacher]:
        vits = [n for n in names if has_cls_token[n]]
        raise ValueError(
            f'MomaAlgorithm: mask_guide.teacher={teacher!r} must name a ViT '
            f'teacher (its class-token attention guides the mask); '
            f'allowed: {vits}.')
    share = cfg.setdefault('random_share', 0.5)
    if not (isinstance(share, (int, float)) and 0 <= share <= 1):
        raise ValueError(f'MomaAlgorithm: mask_guide.random_share={share!r} '
                         'must be a number in [0, 1].')
    if mask_teacher_input:
        raise ValueError(
            'MomaAlgorithm: mask_guide needs the teachers to see the full '
            'image; it cannot be combined with mask_teacher_input=True.')
    return dict(teacher=teacher, random_share=float(share))


def check_neck_warmup(iters: int) -> int:
    """``neck_warmup_iters``: an int >= 0."""
    if not (isinstance(iters, int) and iters >= 0):
        raise ValueError(f'MomaAlgorithm: neck_warmup_iters={iters!r} must '
                         'be an int >= 0.')
    return iters


def fill_head_cfg(cfg: dict, key: str, teacher_dims: int,
                  num_tokens: int) -> dict:
    """Give a statistics head its teacher width and token count.

    Args:
        cfg (dict): The head config of target ``key``; edited in place.
        key (str): The target (a teacher, or a teacher's layer).
        teacher_dims (int): Ct.
        num_tokens (int): 1 + L.

    Returns:
        dict: ``cfg``.
    """
    if cfg.get('target_norm') not in STAT_NORMS:
        return cfg
    for name, value in (('in_channels', teacher_dims),
                        ('num_tokens', num_tokens)):
        given = cfg.setdefault(name, value)
        if given != value:
            raise ValueError(
                f'MomaAlgorithm: head for target {key!r} has {name}='
                f'{given!r}, but the teacher gives {value!r}; remove it or '
                f'set it to {value!r}.')
    return cfg


def check_sample_ids(ids: List[Optional[int]], needed_by: Dict[str,
                                                                object]) -> None:
    """Options that key on the dataset's ``sample_idx`` (``{option: value}``,
    on when truthy) refuse a batch where a sample has none."""
    for option, value in needed_by.items():
        if value and (not ids or None in ids):
            off = 0 if isinstance(value, int) else None
            raise ValueError(
                f'MomaAlgorithm: {option} needs the sample_idx of every '
                'data sample (MMEngine datasets set it); got sample_idx '
                f'values {ids[:4]!r}; set {option}={off}.')
