"""Extract the student backbone of a MOMA checkpoint.

A MOMA checkpoint written by the Runner holds the student under
``backbone.``, one neck and one head per teacher (``necks.*``, ``heads.*``),
teacher weights only with ``save_teachers=True``, and the optimizer, the
lr schedulers and the message hub. This writes a standalone MMPretrain
backbone checkpoint::

    {'state_dict': {'backbone.<name>': tensor, ...}, 'meta': {...}}

which loads with ``weights_only=True`` (no numpy or MMEngine objects) and
with ``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')``
like the MOMA checkpoint itself, and reports everything it dropped. With
``--format timm`` it writes the student's weights alone under timm's names
instead, checked by a strict load into timm's ``VisionTransformer``. The
student is checked by a strict load into an MMPretrain
``VisionTransformer`` of the shape its weights describe. The file is written
atomically (:func:`mmmoma.fileio.atomic_write`). The command line is
``tools/model_converters/extract_student.py``.
"""
import argparse
import os
import os.path as osp
import re
from collections import Counter, OrderedDict
from typing import Dict, List, Optional

import torch

from mmmoma.converters import to_timm
from mmmoma.fileio import atomic_write, check_finite, load_checkpoint

_LAYER = re.compile(r'^layers\.(\d+)\.')
#: Output layouts of :func:`extract_student`.
FORMATS = ('mmpretrain', 'timm')


def _plain(value):
    """Keep only what ``weights_only`` loads: numbers, strings, containers."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, 'item'):  # numpy / torch scalars
        return value.item()
    return str(value)


def student_arch(state: Dict[str, torch.Tensor]) -> dict:
    """The ViT shape that the student weights (prefix removed) describe."""
    layers = sorted({int(m.group(1)) for m in map(_LAYER.match, state) if m})
    try:
        proj = state['patch_embed.projection.weight']  # (C, 3, p, p)
        fc1 = state['layers.0.ffn.layers.0.0.weight']  # (F, C)
        pos = state['pos_embed']  # (1, extra + h * w, C)
    except KeyError as err:
        raise ValueError(
            f'the backbone weights lack {err.args[0]!r}: not an MMPretrain '
            'ViT student') from err
    extra = 1 if 'cls_token' in state else 0
    grid = int(round((pos.shape[1] - extra)**0.5))
    return dict(
        embed_dims=int(proj.shape[0]),
        num_layers=len(layers),
        feedforward_channels=int(fc1.shape[0]),
        patch_size=int(proj.shape[-1]),
        img_size=grid * int(proj.shape[-1]),
        with_cls_token=bool(extra),
        final_norm='ln1.weight' in state,
        qkv_bias='layers.0.attn.qkv.bias' in state)


def check_strict(state: Dict[str, torch.Tensor], arch: dict) -> None:
    """Load ``state`` strictly into an MMPretrain ViT of shape ``arch``."""
    from mmpretrain.models import VisionTransformer

    # num_heads changes no weight shape; any divisor of the width will do.
    vit = VisionTransformer(
        arch=dict(
            embed_dims=arch['embed_dims'],
            num_layers=arch['num_layers'],
            num_heads=1,
            feedforward_channels=arch['feedforward_channels']),
        img_size=arch['img_size'],
        patch_size=arch['patch_size'],
        with_cls_token=arch['with_cls_token'],
        out_type='raw' if arch['with_cls_token'] else 'featmap',
        final_norm=arch['final_norm'],
        qkv_bias=arch['qkv_bias'])
    vit.load_state_dict(state, strict=True)


def timm_arch(arch: dict, num_heads: Optional[int] = None) -> dict:
    """Arguments of timm's ``VisionTransformer`` for the student ``arch``.

    Args:
        arch (dict): From :func:`student_arch`.
        num_heads (int, optional): See :func:`extract_student`.

    Returns:
        dict: ``img_size``, ``patch_size``, ``embed_dim``, ``depth``,
        ``num_heads``, ``mlp_ratio``, ``qkv_bias``, ``num_classes=0``.
    """
    dims = arch['embed_dims']
    if not (arch['with_cls_token'] and arch['final_norm']):
        raise ValueError(
            '--format timm needs a student with a class token and a final '
            f'norm (timm\'s ViT); this one has with_cls_token='
            f"{arch['with_cls_token']}, final_norm={arch['final_norm']}.")
    heads = dims // 64 if num_heads is None else num_heads
    if not (isinstance(heads, int) and heads >= 1 and dims % heads == 0):
        raise ValueError(
            f'--num-heads={num_heads!r}: the student is {dims}-d; allowed: '
            f'a divisor of {dims} (its attention heads).')
    return dict(
        img_size=arch['img_size'],
        patch_size=arch['patch_size'],
        embed_dim=dims,
        depth=arch['num_layers'],
        num_heads=heads,
        mlp_ratio=arch['feedforward_channels'] / dims,
        qkv_bias=arch['qkv_bias'],
        num_classes=0)


def check_timm(state: Dict[str, torch.Tensor], kwargs: dict) -> None:
    """Load ``state`` strictly into timm's ViT built with ``kwargs``."""
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError as err:
        raise ValueError('--format timm needs timm (pip install timm): '
                         f'{err}') from err
    try:
        VisionTransformer(**kwargs).load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'the student does not load into timm\'s '
                         f'VisionTransformer({kwargs}): {err}') from err


def extract_student(src: str,
                    dst: str,
                    prefix: str = 'backbone.',
                    overwrite: bool = False,
                    fmt: str = 'mmpretrain',
                    num_heads: Optional[int] = None) -> dict:
    """Write the student of MOMA checkpoint ``src`` to ``dst``.

    Args:
        src (str): A MOMA checkpoint (``work_dir/epoch_N.pth``).
        dst (str): The output file.
        prefix (str): Where the student lives in ``src``'s state dict.
            Defaults to 'backbone.'.
        overwrite (bool): Replace an existing ``dst``. Defaults to False.
        fmt (str): ``'mmpretrain'`` (``state_dict`` under ``prefix`` and
            ``meta``) or ``'timm'`` (a plain state dict under timm's names, for
            ``timm.create_model(..., pretrained_cfg_overlay=dict(file=OUT))``).
            Defaults to ``'mmpretrain'``.
        num_heads (int, optional): The student's attention heads, which no
            weight shape records; used by ``fmt='timm'`` to check the file
            in a timm model and in the report. Defaults to None: one head per
            64 channels (ViT-T/S/B/L).

    Returns:
        dict: The report: ``kept`` (tensor count), ``num_params``, ``arch``,
        ``dropped_state`` (``{module: tensor count}``) and
        ``dropped_entries`` (top-level checkpoint entries).
    """
    if fmt not in FORMATS:
        raise ValueError(f'--format={fmt!r} is not supported; allowed: '
                         f'{FORMATS}.')
    if not osp.isfile(src):
        raise FileNotFoundError(f'checkpoint={src!r}: no such file; give a '
                                'MOMA checkpoint written by tools/train.py '
                                '(work_dir/epoch_N.pth).')
    if osp.exists(dst) and not overwrite:
        raise FileExistsError(f'out={dst!r} exists; pass --overwrite to '
                              'replace it.')
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError(f'out={dst!r} is the input checkpoint; write the '
                         'student to another file.')
    checkpoint = load_checkpoint(src, 'checkpoint')
    if not isinstance(checkpoint, dict) or not isinstance(
            checkpoint.get('state_dict', checkpoint), dict):
        raise ValueError(f'checkpoint={src!r} holds a '
                         f'{type(checkpoint).__name__}, not a dict.')
    state = checkpoint.get('state_dict', checkpoint)
    student = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                          if k.startswith(prefix))
    if not student:
        found = sorted({k.split('.', 1)[0] + '.' for k in state})
        raise ValueError(
            f'checkpoint={src!r} has no weights under --prefix={prefix!r}; '
            f'its state dict holds {found[:8]}. Allowed: a MOMA checkpoint, '
            "whose student is saved under 'backbone.' (teacher weights, "
            'necks and heads are not a student).')
    check_finite(student, f'checkpoint={src!r} (under --prefix={prefix!r})')
    arch = student_arch(student)
    try:
        check_strict(student, arch)
    except RuntimeError as err:
        raise ValueError(f'checkpoint={src!r}: the {prefix}* weights are not '
                         f'one MMPretrain ViT ({arch}): {err}') from err

    # necks.mae, heads.mae, teachers.mae: one entry per teacher
    per_teacher = ('necks', 'heads', 'teachers')
    dropped_state = Counter(
        '.'.join(k.split('.')[:2]) if k.split('.')[0] in per_teacher else
        k.split('.')[0] for k in state if not k.startswith(prefix))
    dropped_entries = sorted(k for k in checkpoint
                             if k not in ('state_dict', 'meta'))
    meta = _plain(checkpoint.get('meta') or {})
    source_cfg = meta.pop('cfg', None)
    meta = {k: v for k, v in meta.items()
            if k in ('epoch', 'iter', 'seed', 'experiment_name',
                     'mmengine_version', 'time')}
    meta.update(
        converted_by='tools/model_converters/extract_student.py',
        source=osp.abspath(src),
        prefix=prefix,
        arch={k: arch[k] for k in ('embed_dims', 'num_layers',
                                   'feedforward_channels', 'patch_size',
                                   'img_size')},
        source_cfg=source_cfg)
    out = {'state_dict': OrderedDict((prefix + k, v.clone())
                                     for k, v in student.items()),
           'meta': meta}
    timm_kwargs = None
    if fmt == 'timm':
        timm_kwargs = timm_arch(arch, num_heads)
        out = OrderedDict((k, v.clone()) for k, v in to_timm(student).items())
        check_timm(out, timm_kwargs)

    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    with atomic_write(dst, 'w+b') as f:
        torch.save(out, f)
        # The point of the file: a plain weights_only load, no allowlist.
        f.seek(0)
        torch.load(f, map_location='cpu', weights_only=True)
    return dict(
        kept=len(student),
        num_params=sum(v.numel() for v in student.values()),
        arch=arch,
        dropped_state=dict(sorted(dropped_state.items())),
        dropped_entries=dropped_entries,
        format=fmt,
        timm_kwargs=timm_kwargs)


def format_report(report: dict, src: str, dst: str, prefix: str) -> str:
    """The summary that :func:`main` prints for :func:`extract_student`."""
    arch = report['arch']
    lines = [
        f'student: {report["kept"]} tensors, {report["num_params"]:,} '
        f'parameters under {prefix!r} ({arch["num_layers"]} blocks, '
        f'{arch["embed_dims"]}-d, patch {arch["patch_size"]}, '
        f'{arch["img_size"]}px) -> {dst}',
        'dropped from the state dict:'
    ]
    lines += ([f'  {name}.*: {count} tensors'
               for name, count in report['dropped_state'].items()]
              or ['  nothing (no necks, heads or teachers)'])
    lines.append('dropped checkpoint entries: ' +
                 (', '.join(report['dropped_entries']) or 'none'))
    if report.get('format') == 'timm':
        kwargs = ', '.join(f'{k}={v!r}' for k, v in
                           report['timm_kwargs'].items())
        lines.append(
            'written under timm\'s names (no meta); load with timm.'
            "create_model('vit_base_patch16_224', pretrained=True, "
            f"pretrained_cfg_overlay=dict(file=OUT, num_classes=0), {kwargs})")
    else:
        lines.append("kept: meta (epoch, iter, seed, source config); load "
                     "with init_cfg=dict(type='Pretrained', checkpoint=OUT, "
                     f"prefix={prefix!r})")
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Extract the student backbone of a MOMA checkpoint')
    parser.add_argument('checkpoint', help='MOMA checkpoint (epoch_N.pth)')
    parser.add_argument('out', help='output backbone checkpoint')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help="where the student lives in the state dict (default "
        "'backbone.')")
    parser.add_argument(
        '--overwrite', action='store_true', help='replace an existing out')
    parser.add_argument(
        '--format',
        default='mmpretrain',
        help=f'output layout, one of {FORMATS} (default mmpretrain; timm: a '
        'plain state dict under timm\'s names)')
    parser.add_argument(
        '--num-heads',
        type=int,
        default=None,
        help='with --format timm: the student\'s attention heads (default: '
        'one per 64 channels)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Extract the student and print what was kept and dropped.

    Args:
        argv (list[str], optional): The arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        dict: The report of :func:`extract_student`.
    """
    args = parse_args(argv)
    try:
        report = extract_student(args.checkpoint, args.out, args.prefix,
                                 args.overwrite, args.format, args.num_heads)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise SystemExit(f'extract_student.py: error: {err}') from err
    print(format_report(report, args.checkpoint, args.out, args.prefix))
    return report

