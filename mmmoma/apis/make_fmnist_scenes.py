"""The command line of ``tools/dataset_converters/make_fmnist_scenes.py``.

See :mod:`mmmoma.datasets.fmnist_scenes` for what it writes.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmmoma.datasets.fmnist_scenes import DEFAULT_ROOT, make_scenes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Compose Fashion-MNIST scenes in the ADE20K layout')
    parser.add_argument('out', help='output folder (the data root)')
    parser.add_argument(
        '--fmnist-root',
        default=DEFAULT_ROOT,
        help='folder with the Fashion-MNIST idx files')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument(
        '--size', type=int, default=256, help='side of the square scenes')
    parser.add_argument(
        '--items',
        type=int,
        nargs=2,
        default=(2, 5),
        metavar=('MIN', 'MAX'),
        help='items per scene')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace a non-empty output folder')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    """Write the scenes and print a summary.

    Args:
        argv (list[str], optional): The arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        dict: The dataset's meta (what ``meta.json`` holds).
    """
    args = parse_args(argv)
    command = ' '.join(['make_fmnist_scenes.py'] +
                       list(sys.argv[1:] if argv is None else argv))
    try:
        meta = make_scenes(args.out, args.fmnist_root, args.num_train,
                           args.num_val, args.size, tuple(args.items),
                           args.seed, args.overwrite, command)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise SystemExit(f'make_fmnist_scenes.py: error: {err}') from err
    total = {k: v['num_images'] for k, v in meta['splits'].items()}
    print(f'wrote {total} scenes of {args.size}x{args.size} to '
          f'{osp.abspath(args.out)} (10 classes + background 0; '
          'meta.json, README.md)')
    return meta
