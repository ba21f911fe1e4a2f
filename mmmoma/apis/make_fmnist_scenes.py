"""The command line of ``tools/dataset_converters/make_fmnist_scenes.py``.

See :mod:`mmmoma.datasets.fmnist_scenes` for the scenes it writes and
:mod:`mmmoma.datasets.fmnist_mosaics` for the mosaics (``--mosaics``).
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmmoma.datasets.fmnist_mosaics import make_mosaics
from mmmoma.datasets.fmnist_scenes import DEFAULT_ROOT, make_scenes

# Defaults that differ between the scenes and the mosaics (--mosaics).
DEFAULTS = dict(
    scenes=dict(num_train=2000, num_val=500, size=256),
    mosaics=dict(num_train=500, num_val=200, size=84))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Compose Fashion-MNIST scenes in the ADE20K layout, or '
        'mosaics (--mosaics) in MMSeg\'s img_dir/ann_dir layout')
    parser.add_argument('out', help='output folder (the data root)')
    parser.add_argument(
        '--fmnist-root',
        default=DEFAULT_ROOT,
        help='folder with the Fashion-MNIST idx files')
    parser.add_argument(
        '--mosaics',
        action='store_true',
        help='write mosaics: a grid of native-scale items on black, '
        'background a class (mmmoma.datasets.fmnist_mosaics)')
    parser.add_argument(
        '--num-train', type=int, help='2000 scenes / 500 mosaics')
    parser.add_argument('--num-val', type=int, help='500 scenes / 200 mosaics')
    parser.add_argument(
        '--size',
        type=int,
        help='side of the square images: 256 for scenes, 84 for mosaics')
    parser.add_argument(
        '--items',
        type=int,
        nargs=2,
        default=(2, 5),
        metavar=('MIN', 'MAX'),
        help='items per scene')
    parser.add_argument(
        '--cells', type=int, default=3, help='mosaic cells per side')
    parser.add_argument(
        '--empty-prob',
        type=float,
        default=0.25,
        help='probability that a mosaic cell is empty')
    parser.add_argument(
        '--threshold',
        type=int,
        default=30,
        help='a mosaic item pixel above this (of 255) has its class')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace a non-empty output folder')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Write the scenes (or, with ``--mosaics``, the mosaics) and print a
    summary.

    Args:
        argv (list[str], optional): The arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        dict: The dataset's meta (what ``meta.json`` holds).
    """
    args = parse_args(argv)
    command = ' '.join(['make_fmnist_scenes.py'] +
                       list(sys.argv[1:] if argv is None else argv))
    kind = 'mosaics' if args.mosaics else 'scenes'
    sizes = {
        k: default if getattr(args, k) is None else getattr(args, k)
        for k, default in DEFAULTS[kind].items()
    }
    common = dict(fmnist_root=args.fmnist_root, seed=args.seed,
                  overwrite=args.overwrite, command=command, **sizes)
    try:
        if args.mosaics:
            meta = make_mosaics(args.out, cells=args.cells,
                                empty_prob=args.empty_prob,
                                threshold=args.threshold, **common)
        else:
            meta = make_scenes(args.out, num_items=tuple(args.items),
                               **common)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise SystemExit(f'make_fmnist_scenes.py: error: {err}') from err
    total = {k: v['num_images'] for k, v in meta['splits'].items()}
    background = ('background 0 a class' if args.mosaics else
                  'background 0')
    print(f'wrote {total} {kind} of {sizes["size"]}x{sizes["size"]} to '
          f'{osp.abspath(args.out)} (10 classes + {background}; '
          'meta.json, README.md)')
    return meta
