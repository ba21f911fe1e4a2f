"""The command line of ``tools/model_converters/official_to_mmpretrain.py``.

Converts an official MAE or MoCo v3 ViT checkpoint with
:mod:`mmmoma.converters`, checks it by a strict load into
``mmpretrain.VisionTransformer``, writes it atomically and prints what was
dropped.
"""
import argparse
import json
import sys
from collections import Counter
from typing import List, Optional, Union

from mmmoma import converters
from mmmoma.fileio import check_finite


def _arch(value: str) -> Union[str, dict]:
    # A custom arch is given as a JSON dict, e.g. for a non-standard width.
    if not value.lstrip().startswith('{'):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'{value!r} is not JSON: {e}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Convert an official MAE or MoCo v3 ViT checkpoint to '
        'MMPretrain weights.')
    parser.add_argument('--format', required=True, choices=converters.FORMATS,
                        help='layout of SRC; never guessed from its keys')
    parser.add_argument('--arch', required=True,
                        type=_arch, help="VisionTransformer arch, e.g. 'b', "
                        "'l', 'h', 'deit-s', 'mocov3-small', or a JSON dict "
                        "with embed_dims, num_layers, num_heads and "
                        "feedforward_channels")
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--patch-size', type=int, default=16)
    parser.add_argument('src', metavar='SRC', help='official checkpoint')
    parser.add_argument('dst', metavar='DST', help='output checkpoint')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Convert, check with a strict load, write DST and print a report."""
    args = parse_args(argv)
    try:
        checkpoint = converters.load_official(args.src)
        dropped: List[str] = []
        state_dict = converters.convert_official(checkpoint, args.format,
                                                 dropped)
        check_finite(state_dict, f'SRC {args.src!r} (format '
                     f'{args.format!r}, tensors in MMPretrain names)')
        converters.build_backbone(state_dict, args.arch, args.img_size,
                                  args.patch_size)
        name = args.arch if isinstance(args.arch, str) else None
        meta = dict(
            source_format=args.format, source_file=args.src,
            arch=converters.resolve_arch(args.arch), arch_name=name,
            img_size=args.img_size, patch_size=args.patch_size,
            converter='tools/model_converters/official_to_mmpretrain.py')
        converters.save_mmpretrain(state_dict, args.dst, meta)
    except ValueError as e:
        sys.exit(f'error: {e}')
    groups = Counter(
        next((p for p in converters.DROP_PREFIXES[args.format]
              if k.startswith(p)), k) for k in dropped)
    print(f'converted {len(state_dict)} tensors ({args.format}, '
          f'arch {args.arch}) -> {args.dst}')
    print('dropped: ' + (', '.join(f'{p}* ({n})' for p, n in groups.items())
                         or 'nothing'))
    entry = converters.LAYOUTS[args.format][0]
    ignored = [k for k in checkpoint if k != entry]
    print(f'ignored top-level entries: {ignored}')
    print('strict load into mmpretrain.VisionTransformer: passed')

