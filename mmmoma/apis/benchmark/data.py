"""Measure how many images per second a config's train pipeline sustains.

The pipeline (``train_dataloader.dataset.pipeline``) runs on the image
files of any folder (any layout; the files are cycled), so no dataset
annotation is needed:

- :func:`time_transforms`: in this process on one thread, as a dataloader
  worker runs it, in milliseconds per image for each transform.
- :func:`time_workers`: through a ``torch.utils.data.DataLoader`` with the
  config's collate function and N worker processes, in images per second
  of whole batches in steady state
  (:func:`mmmoma.apis.benchmark.timing.time_loader`).

:func:`main` runs both (medians of ``--repeats`` runs), prints a table and
writes JSON; ``tools/analysis_tools/data_benchmark.py`` is its command line.
A training step of S images/s per GPU needs about S / (images/s of one
worker) dataloader workers per GPU, each on a core of its own.
"""
import argparse
import os
import os.path as osp
import platform
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import FUNCTIONS, DefaultScope

from mmmoma.apis import launch
from mmmoma.apis.benchmark.timing import (format_rows, loader_batches, report,
                                time_loader)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
DESCRIPTION = ('Measure how many images per second a config\'s train '
               'pipeline sustains.')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``tools/analysis_tools/data_benchmark.py``."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument('config', help='config file')
    parser.add_argument('--images', required=True,
                        help='folder with image files (searched recursively)')
    parser.add_argument('--num', type=int, default=200,
                        help='images per in-process measurement (default '
                        '200)')
    parser.add_argument('--workers', type=int, nargs='*', default=[],
                        help='also time a DataLoader with each of these '
                        'worker counts (0: in this process)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='DataLoader batch (default: the config\'s)')
    parser.add_argument('--batches', type=int, default=4,
                        help='timed DataLoader batches, at least 2 per '
                        'worker (default 4)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='measure each this often and report the '
                        'median (default 3)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write the JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    for name in ('num', 'batch_size', 'batches', 'repeats'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")}={value} must be >= 1')
    bad = [w for w in args.workers if w < 0]
    if bad:
        parser.error(f'--workers {bad} must be >= 0')
    return args


def list_images(folder: str) -> List[str]:
    """The image files under ``folder``, sorted."""
    if not osp.isdir(folder):
        raise SystemExit(f'--images={folder!r} is not a folder. Allowed: a '
                         'folder with image files '
                         f'({", ".join(IMAGE_EXTENSIONS)}), searched '
                         'recursively.')
    files = sorted(
        osp.join(root, name) for root, _, names in os.walk(folder)
        for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise SystemExit(f'--images={folder!r} holds no image file '
                         f'({", ".join(IMAGE_EXTENSIONS)}).')
    return files


class FilePipeline(torch.utils.data.Dataset):
    """``length`` samples cycling over ``files`` through ``pipeline``.

    Args:
        files (List[str]): Image files.
        pipeline (Callable): Turns ``dict(img_path, sample_idx)`` into a
            sample (an MMCV ``Compose``).
        length (int): Samples in the dataset.
    """

    def __init__(self, files: List[str], pipeline: Callable,
                 length: int) -> None:
        self.files = files
        self.pipeline = pipeline
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> dict:
        path = self.files[idx % len(self.files)]
        return self.pipeline(dict(img_path=path, sample_idx=idx))


def build_pipeline(cfg: Config):
    """The config's ``train_dataloader.dataset.pipeline`` as a ``Compose``."""
    from mmcv.transforms import Compose
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        return Compose([
            TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
        ])


def time_transforms(pipeline, files: List[str], num: int) -> Dict[str, float]:
    """Milliseconds per image spent in each transform, on one thread.

    Returns:
        Dict[str, float]: Keyed ``'<index>:<transform class>'``.
    """
    names = [type(t).__name__ for t in pipeline.transforms]
    keys = [f'{i}:{n}' for i, n in enumerate(names)]
    spent = dict.fromkeys(keys, 0.0)
    for i in range(num + 1):
        results = dict(img_path=files[i % len(files)], sample_idx=i)
        for key, transform in zip(keys, pipeline.transforms):
            start = time.perf_counter()
            results = transform(results)
            if i:  # the first image warms caches and imports up
                spent[key] += time.perf_counter() - start
    return {key: 1e3 * value / num for key, value in spent.items()}


def time_workers(cfg: Config, pipeline, files: List[str], workers: int,
                 batch_size: int, batches: int) -> dict:
    """Steady-state images per second of a DataLoader with ``workers``
    processes (:func:`~mmmoma.apis.benchmark.timing.time_loader`)."""
    collate = cfg.train_dataloader.get('collate_fn',
                                       dict(type='pseudo_collate'))
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        collate_fn = FUNCTIONS.get(collate['type'])
    warm, timed = loader_batches(workers, batches)
    dataset = FilePipeline(files, pipeline, batch_size * (warm + timed))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers,
        collate_fn=collate_fn)
    return dict(
        time_loader(loader, workers, batches),
        workers=workers,
        batch_size=batch_size)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the command line ``argv``: print the table, write the JSON.

    Returns:
        dict: What the JSON holds.
    """
    args = parse_args(argv)
    cfg = launch.load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    files = list_images(args.images)
    np.random.seed(args.seed)
    pipeline = build_pipeline(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker gets
    try:
        runs = [
            time_transforms(pipeline, files, args.num)
            for _ in range(args.repeats)
        ]
    finally:
        torch.set_num_threads(threads)
    # Medians over the repeats: a shared machine's noise is one-sided.
    per_transform = {k: float(np.median([r[k] for r in runs]))
                     for k in runs[0]}
    totals = [sum(r.values()) for r in runs]
    result = {
        'config': args.config,
        'pipeline': [str(t) for t in pipeline.transforms],
        'images': {'folder': args.images, 'files': len(files)},
        'cpu': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'torch': torch.__version__,
        'repeats': args.repeats,
        'ms_per_image': per_transform,
        'images_per_s_one_thread': 1e3 / float(np.median(totals)),
        'images_per_s_one_thread_runs': [1e3 / t for t in totals],
    }
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    result['loader'] = []
    for workers in args.workers:
        runs = [
            time_workers(cfg, pipeline, files, workers, batch_size,
                         args.batches) for _ in range(args.repeats)
        ]
        rates = [r['images_per_s'] for r in runs]
        result['loader'].append(
            dict(runs[0], images_per_s=float(np.median(rates)),
                 images_per_s_runs=rates))
    report(render(result), result, args.out)
    return result


def render(result: dict) -> str:
    """The printed table of a :func:`main` result."""
    rows = [('config', result['config']),
            ('images', f'{result["images"]["files"]} files in '
             f'{result["images"]["folder"]}'),
            ('cpu', f'{result["cpu"]} ({result["cpu_count"]} cores), torch '
             f'{result["torch"]}')]
    for key, ms in result['ms_per_image'].items():
        rows.append((f'  {key}', f'{ms:.3f} ms/image'))
    rows.append(('one thread', f'{result["images_per_s_one_thread"]:.1f} '
                 'images/s'))
    for row in result['loader']:
        rows.append((f'DataLoader, {row["workers"]} workers',
                     f'{row["images_per_s"]:.1f} images/s (batch '
                     f'{row["batch_size"]})'))
    return format_rows(rows)
