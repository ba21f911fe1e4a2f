"""Convert official MAE and MoCo v3 ViT checkpoints to MMPretrain weights.

Official MAE files keep timm-named weights under ``model``; official MoCo
v3 files keep them under ``state_dict``, prefixed
``module.base_encoder.``, beside the momentum encoder and the predictor.
The renames (both ways: :func:`to_timm`) come from :data:`_KEY_MAP`. Both
formats load into ``mmpretrain.VisionTransformer``: MMPretrain's
``MoCoV3ViT`` differs from it only in initialisation and freezing, and gives
the same features.
"""
import os
import pickle
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models import VisionTransformer

from .fileio import atomic_save

FORMATS = ('mae', 'mocov3')

# Top-level entry that holds the weights, and the encoder's key prefix there.
LAYOUTS = {'mae': ('model', ''),
           'mocov3': ('state_dict', 'module.base_encoder.')}
_REQUIRED = ('cls_token', 'pos_embed', 'patch_embed.proj.weight')
# Source keys outside the encoder: dropped, and reported by the caller.
DROP_PREFIXES = {
    # Full MAE pre-training checkpoints (mae_visualize_*) keep the decoder.
    'mae': ('decoder_', 'mask_token'),
    # The projector replaces the timm head; momentum encoder and predictor are
    # training-only.
    'mocov3': ('module.base_encoder.head.', 'module.momentum_encoder.',
               'module.predictor.'),
}
# One table for both directions: timm (the official MAE / MoCo v3 layout)
# key prefix, MMPretrain's. First match wins: the generic block rule follows
# the specific ones. Keys no rule matches (cls_token, pos_embed) keep their
# name.
_KEY_MAP = (
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('blocks.{i}.norm1.', 'layers.{i}.ln1.'),
    ('blocks.{i}.norm2.', 'layers.{i}.ln2.'),
    ('blocks.{i}.mlp.fc1.', 'layers.{i}.ffn.layers.0.0.'),
    ('blocks.{i}.mlp.fc2.', 'layers.{i}.ffn.layers.1.'),
    ('blocks.{i}.', 'layers.{i}.'),  # attn.qkv and attn.proj keep names
    ('norm.', 'ln1.'),
)


def _key_rules(src: int) -> List[Tuple[re.Pattern, str]]:
    """Regex renames from column ``src`` of :data:`_KEY_MAP` to the other."""
    rules = []
    for pair in _KEY_MAP:
        pattern = re.escape(pair[src]).replace(re.escape('{i}'), r'(\d+)')
        rules.append((re.compile(f'^{pattern}'),
                      pair[1 - src].replace('{i}', r'\1')))
    return rules


_RENAMES = _key_rules(0)  # timm -> MMPretrain
_TO_TIMM = _key_rules(1)  # MMPretrain -> timm


def rename_keys(state_dict: Dict[str, torch.Tensor],
                rules: List[Tuple[re.Pattern, str]]) -> OrderedDict:
    """``state_dict`` with each key renamed by the first rule that matches."""
    out = OrderedDict()
    for name, value in state_dict.items():
        for pattern, repl in rules:
            if pattern.match(name):
                name = pattern.sub(repl, name)
                break
        out[name] = value
    return out


def to_timm(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """An MMPretrain ViT's weights (no prefix) under timm's names.

    Args:
        state_dict (dict): ``VisionTransformer`` / ``MAEViT`` weights.

    Returns:
        OrderedDict: The same tensors, for ``timm``'s ``VisionTransformer``.
    """
    return rename_keys(state_dict, _TO_TIMM)


# MoCo v3's ViT-S is not mmpretrain's 's'; MoCoV3ViT adds it to the shared
# arch_zoo only once an instance is built, so it is spelled out here.
_EXTRA_ARCHS = dict.fromkeys(['mocov3-s', 'mocov3-small'], dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536))


def load_official(path: str) -> object:
    """Load an official checkpoint safely (``weights_only=True``, on CPU).

    Args:
        path (str): The checkpoint file (the converter's ``SRC``).

    Returns:
        object: What the file holds, normally a dict.
    """
    if not os.path.isfile(path):
        raise ValueError(f'SRC {path!r} does not exist or is not a file. '
                         'Allowed: an official MAE (mae_pretrain_vit_*.pth) '
                         'or MoCo v3 (vit-*-300ep.pth.tar) checkpoint.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r'Unsupported global: GLOBAL (\S+)', str(e))
        if not found:  # also raised for files that are no pickle at all
            raise ValueError(f'SRC {path!r} is not a PyTorch checkpoint '
                             '(torch.load cannot unpickle it).') from e
        raise ValueError(
            f'SRC {path!r} holds pickled Python objects ({found.group(1)}), '
            'which weights_only=True refuses so that a foreign file cannot '
            'run code. If you trust the file, keep only its weights in a '
            'trusted session, e.g. torch.save({"model": torch.load(SRC, '
            'weights_only=False)["model"]}, "clean.pth") (use "state_dict" '
            'for MoCo v3), and convert that file.') from e
    except Exception as e:  # torch.load raises many types for a non-checkpoint
        raise ValueError(f'SRC {path!r} is not a PyTorch checkpoint '
                         f'(torch.load: {type(e).__name__}: {e}).') from e


def _describe(checkpoint: object, entry: str) -> str:
    if not isinstance(checkpoint, dict):
        return f'a {type(checkpoint).__name__}, not a dict'
    text = f'top-level keys {list(checkpoint)[:8]}'
    if isinstance(checkpoint.get(entry), dict):
        text += f', {entry!r} keys starting {list(checkpoint[entry])[:3]}'
    return text


def convert_official(checkpoint: dict, fmt: str,
                     dropped: Optional[List[str]] = None) -> OrderedDict:
    """Rename an official ViT encoder's weights to MMPretrain's names.

    Args:
        checkpoint (dict): The raw object of the official file.
        fmt (str): The source format, one of :data:`FORMATS`. It is never
            guessed from the keys.
        dropped (list[str], optional): If given, the source keys that are not
            part of the encoder are appended to it. Defaults to None.

    Returns:
        OrderedDict: ``mmpretrain.VisionTransformer`` weights, no prefix.
    """
    if fmt not in FORMATS:
        raise ValueError(f'--format/fmt must be one of {FORMATS}, '
                         f'got {fmt!r}.')
    entry, prefix = LAYOUTS[fmt]
    weights = checkpoint.get(entry) if isinstance(checkpoint, dict) else None
    if not (isinstance(weights, dict)
            and all(prefix + k in weights for k in _REQUIRED)):
        raise ValueError(
            f'--format/fmt={fmt!r} does not match the checkpoint: {fmt!r} '
            f'expects a dict whose {entry!r} entry holds '
            f'{[prefix + k for k in _REQUIRED]}, but the file has '
            f'{_describe(checkpoint, entry)}. Allowed formats: {FORMATS}.')
    finetuned = [k for k in weights if k.startswith(('fc_norm.', 'head.'))]
    if fmt == 'mae' and finetuned:
        # A fine-tuned encoder feeds a classifier, often through a pooled
        # fc_norm instead of `norm`: it is not the pre-trained teacher.
        raise ValueError(
            f"--format/fmt='mae' expects a pre-trained MAE encoder "
            f'(mae_pretrain_vit_*.pth), but the file holds {finetuned[:4]}: '
            'it is a fine-tuned model, which this converter refuses.')
    kept = OrderedDict()
    for key, value in weights.items():
        if key.startswith(DROP_PREFIXES[fmt]):
            if dropped is not None:
                dropped.append(key)
            continue
        kept[key[len(prefix):] if key.startswith(prefix) else key] = value
    # Unknown keys keep their name, so that the strict load reports them.
    return rename_keys(kept, _RENAMES)


def add_prefix(state_dict: Dict[str, torch.Tensor],
               prefix: str = 'backbone.') -> OrderedDict:
    """Return ``state_dict`` with ``prefix`` put before every key."""
    return OrderedDict((prefix + k, v) for k, v in state_dict.items())


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return the ``VisionTransformer`` arch dict for a name or a dict."""
    zoo = {**VisionTransformer.arch_zoo, **_EXTRA_ARCHS}
    if isinstance(arch, str) and arch.lower() in zoo:
        return dict(zoo[arch.lower()])
    keys = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
    if isinstance(arch, dict) and keys <= set(arch):
        return dict(arch)
    raise ValueError(f'--arch/arch must be one of {sorted(zoo)} or a dict '
                     f'with keys {sorted(keys)}, got {arch!r}.')


def build_backbone(state_dict: Dict[str, torch.Tensor],
                   arch: Union[str, dict], img_size: int = 224,
                   patch_size: int = 16, **kwargs) -> VisionTransformer:
    """Build ``mmpretrain.VisionTransformer`` and load ``state_dict`` strictly.

    Args:
        state_dict (dict): Converted weights, without prefix.
        arch (str | dict): A ``VisionTransformer`` arch, or 'mocov3-small'.
        img_size (int): Input size the position embedding was trained at.
            Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        **kwargs: Further ``VisionTransformer`` arguments (e.g. ``out_type``).

    Returns:
        VisionTransformer: The backbone holding the weights, in eval mode.
    """
    # Both teachers are timm ViTs with LayerNorm eps 1e-6, a qkv bias and a
    # final norm; state them so MMPretrain's defaults cannot drift.
    model = VisionTransformer(
        arch=resolve_arch(arch), img_size=img_size, patch_size=patch_size,
        qkv_bias=True, norm_cfg=dict(type='LN', eps=1e-6), final_norm=True,
        **kwargs)
    # Shapes are checked here because VisionTransformer silently resizes a
    # mis-shaped pos_embed while loading.
    expected = model.state_dict()
    shapes = {k: tuple(getattr(v, 'shape', ())) for k, v in state_dict.items()}
    problems = {
        'missing': [k for k in expected if k not in shapes],
        'unexpected': [k for k in shapes if k not in expected],
        'mis-shaped': [
            f'{k}: file {s} vs model {tuple(expected[k].shape)}'
            for k, s in shapes.items()
            if k in expected and s != tuple(expected[k].shape)]
    }
    if any(problems.values()):
        # Cap each list: a wrong --arch would otherwise print every key.
        lines = ''.join(
            f'\n  {name} ({len(keys)}): {keys[:12]}'
            f'{" ..." if len(keys) > 12 else ""}'
            for name, keys in problems.items())
        raise ValueError(
            f'The converted weights do not fit VisionTransformer(arch={arch!r}'
            f', img_size={img_size}, patch_size={patch_size}); check --arch, '
            f'--img-size, --patch-size and --format. Keys in MMPretrain '
            f'names:{lines}')
    model.load_state_dict(state_dict, strict=True)
    model.eval()  # BaseBackbone.train() returns None, so no chaining
    return model


def save_mmpretrain(state_dict: Dict[str, torch.Tensor], path: str,
                    meta: dict) -> None:
    """Write ``{'state_dict': backbone.*, 'meta': meta}`` atomically.

    Args:
        state_dict (dict): Converted weights, without prefix.
        path (str): The output file (the converter's ``DST``).
        meta (dict): Plain Python values only, so that the file loads with
            ``weights_only=True``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f'DST {path!r}: no directory {directory!r}. '
                         'Allowed: a file in an existing folder.')
    atomic_save({'state_dict': add_prefix(state_dict), 'meta': meta}, path)
