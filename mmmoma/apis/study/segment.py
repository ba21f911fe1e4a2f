"""Segmentation of the study: UperNet on composed Fashion-MNIST scenes with
a run's backbone, trained and validated by ``tools/train.py``; or, opt-in
(``preset['seg']['protocol']``, ``--seg-protocol``), segmentation v2 on
the Fashion-MNIST mosaics, fine-tuned or linearly probed."""
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Optional

from mmmoma.datasets.fmnist_mosaics import make_mosaics
from mmmoma.datasets.fmnist_scenes import make_scenes
from ..common import (REPO_ROOT, Progress, config_hash, fmt_time, read_cache,
                      read_json, run_tool, write_cache)
from ..curves import find_scalars, read_scalars
from .rows import SEG_PROTOCOLS, seg_iters


def _make_unless_made(out: str, wanted: dict,
                      have: Callable[[dict], dict], make: Callable,
                      data_root: Optional[str]) -> bool:
    """Make the data in ``out`` unless its ``meta.json`` already says
    ``wanted`` (read by ``have``); whether it was made."""
    meta_path = osp.join(out, 'meta.json')
    if osp.isfile(meta_path) and have(read_json(meta_path)) == wanted:
        return False
    kwargs = {'fmnist_root': data_root} if data_root else {}
    make(out, overwrite=True, command='tools/study.py', **kwargs, **wanted)
    return True


def prepare_scenes(work: str, preset: dict, data_root: Optional[str],
                   progress: Progress) -> str:
    """The composed-scene dataset (ADE20K layout), made once per setting.

    Returns:
        str: Its folder, ``<work>/seg/scenes``.
    """
    seg = preset['seg']
    out = osp.join(work, 'seg', 'scenes')
    wanted = dict(num_train=seg['num_train'], num_val=seg['num_val'],
                  size=64, seed=0)
    def have(meta: dict) -> dict:
        return dict(num_train=meta['splits']['training']['num_images'],
                    num_val=meta['splits']['validation']['num_images'],
                    size=meta['size'], seed=meta['seed'])

    if _make_unless_made(out, wanted, have, make_scenes, data_root):
        progress.log(f'segmentation data: {seg["num_train"]} + '
                     f'{seg["num_val"]} scenes of 64x64 in {out}')
    return out


def prepare_mosaics(work: str, preset: dict, data_root: Optional[str],
                    progress: Progress) -> str:
    """The mosaics of segmentation v2 (defaults of
    :func:`~mmmoma.datasets.fmnist_mosaics.make_mosaics`, 84x84), made once
    per setting.

    Returns:
        str: Its folder, ``<work>/seg-v2/mosaics``.
    """
    seg = preset['seg']
    out = osp.join(work, 'seg-v2', 'mosaics')
    wanted = dict(num_train=seg['num_train'], num_val=seg['num_val'],
                  seed=0)
    def have(meta: dict) -> dict:
        return dict(num_train=meta['splits']['train']['num_images'],
                    num_val=meta['splits']['val']['num_images'],
                    seed=meta['seed'])

    if _make_unless_made(out, wanted, have, make_mosaics, data_root):
        progress.log(f'segmentation v2 data: {seg["num_train"]} + '
                     f'{seg["num_val"]} mosaics of 84x84 in {out}')
    return out


def prepare_seg_data(work: str, preset: dict, data_root: Optional[str],
                     progress: Progress) -> str:
    """The data of the preset's segmentation protocol: the scenes, or the
    mosaics when ``preset['seg']`` names a v2 ``protocol``."""
    if preset['seg'].get('protocol', 'scenes') == 'scenes':
        return prepare_scenes(work, preset, data_root, progress)
    return prepare_mosaics(work, preset, data_root, progress)


def read_miou(run_dir: str) -> Optional[float]:
    """The last validation mIoU (%) in the run's ``vis_data/scalars.json``,
    None before the run has validated."""
    try:
        miou = read_scalars(find_scalars(run_dir)).get('mIoU')
    except FileNotFoundError:
        return None
    # mmseg's value (2 decimals) as a float32: to 4 decimals, as MMEngine
    # logs it
    return None if miou is None else round(miou.values[-1], 4)


def segment(name: str, checkpoint: Optional[str], scenes: str, work: str,
            preset: dict, force: bool, progress: Progress,
            seed: Optional[int] = None, jobs: int = 1) -> dict:
    """UperNet on the scenes with ``checkpoint`` as backbone; its mIoU.

    ``tools/train.py`` trains and then validates the final weights on the
    validation scenes (the config's test set too), in the same process:
    one start-up per model instead of two with ``tools/test.py``. With a
    v2 ``protocol`` in ``preset['seg']``, the same on the mosaics
    (``scenes`` is then their folder) with that protocol's config
    (:data:`~.rows.SEG_PROTOCOLS`), in ``<work>/seg-<protocol>/<name>``.
    ``checkpoint=None`` segments from random init; ``seed`` (default: the
    config's) seeds the segmentation training; ``jobs``: the segmentation
    runs made at once (recorded with the result, for the study's wall
    time).

    Returns:
        dict: ``miou`` (%), ``seg_seconds`` and ``jobs`` (the runs made at
        once).
    """
    seg = preset['seg']
    protocol = seg.get('protocol', 'scenes')
    iters = seg_iters(seg, protocol)
    config = SEG_PROTOCOLS[protocol]['config']
    item = f'seg {name}'  # the progress item
    run_dir = osp.join(work, 'seg', name)
    if protocol != 'scenes':
        item = f'seg {protocol} {name}'
        run_dir = osp.join(work, f'seg-{protocol}', name)
    key = dict(
        checkpoint=checkpoint,
        mtime=osp.getmtime(checkpoint) if checkpoint else None,
        config_hash=config_hash(config),
        seg=seg,
        scenes=read_json(osp.join(scenes, 'meta.json'))['splits'])
    if seed is not None:  # absent otherwise: v1's caches stay valid
        key['seed'] = seed
    cache = osp.join(run_dir, 'result.json')
    cached = read_cache(cache, key, force)
    if cached is not None:
        progress.finish(item)
        return cached
    if osp.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    roots = [f'{split}_dataloader.dataset.data_root={scenes}'
             for split in ('train', 'val')]
    # a warm-up of at least 2 iterations: MMEngine's LinearLR with end=1
    # never leaves its start factor
    warmup = min(100, max(2, iters // 10))
    init = ([f'model.backbone.init_cfg.checkpoint={checkpoint}']
            if checkpoint else ['model.backbone.init_cfg=None'])
    if seed is not None:
        init.append(f'randomness.seed={seed}')
    progress.log(f'segmentation {name}: {protocol}, {iters} iterations')
    start = time.time()
    log_path = osp.join(run_dir, 'train.log')
    run_tool([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--work-dir',
        run_dir, '--cfg-options', *init, *roots,
        f'train_dataloader.batch_size={seg["batch_size"]}',
        f'train_dataloader.num_workers={seg["workers"]}',
        f'train_dataloader.persistent_workers={seg["workers"] > 0}',
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={max(1, min(50, iters // 4))}'
    ], log_path, f'segmentation training ({name})')
    miou = read_miou(run_dir)
    if miou is None:
        raise SystemExit(f'segmentation ({name}): no validation mIoU in '
                         f'{run_dir}/*/vis_data/scalars.json (log: '
                         f'{log_path})')
    results = dict(miou=miou, seg_seconds=time.time() - start, jobs=jobs)
    write_cache(cache, key, results)
    progress.finish(item)
    progress.log(f'segmentation {name}: mIoU {results["miou"]:.2f} '
                 f'({fmt_time(results["seg_seconds"])})')
    return results
