"""Clock readings of training steps and dataloaders, in steady state.

- A dataloader (:func:`time_loader`): the batches its workers prefetch at
  start-up are taken untimed (:func:`loader_batches`), then images per
  second, alone or feeding a training step.
- A training step on a fixed batch (:func:`time_steps`), the frozen
  teachers alone (:func:`time_teachers`), the ops that take the most time
  (:func:`profile_steps`) and peak memory (:func:`peak_memory`).

Every clock reading on a GPU follows a synchronisation (:func:`sync`).
:func:`report` prints a benchmark's table and writes its JSON.
"""
import json
import resource
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmmoma.fileio import atomic_write


def batch_images(batch: dict) -> int:
    """Images in a collated batch: ``inputs`` (B, 3, H, W) or a list of
    views."""
    inputs = batch['inputs']
    return len(inputs[0] if isinstance(inputs, (list, tuple)) else inputs)


def loader_batches(workers: int, batches: int,
                   prefetch_factor: Optional[int] = None) -> tuple:
    """Untimed and timed batches for a steady-state measurement.

    Workers start together and each fills ``prefetch_factor`` (2) batches
    before the first is taken, so the first ``workers x prefetch_factor``
    batches arrive almost at once: they are consumed untimed (at least one,
    for start-up), and at least ``2 x workers`` batches are timed.

    Args:
        workers (int): The loader's worker processes (``num_workers``).
        batches (int): Batches to time at least.
        prefetch_factor (int, optional): Batches each worker prefetches.
            Defaults to None (2, the DataLoader's default).

    Returns:
        tuple: ``(warm, timed)`` batch counts; a loader must yield at least
        their sum.
    """
    prefetch = prefetch_factor or 2
    return max(1, workers * prefetch), max(batches, 2 * workers)


def time_loader(loader: Iterable,
                workers: int,
                batches: int,
                step: Optional[Callable[[dict], None]] = None,
                sync: Optional[Callable[[], None]] = None) -> dict:
    """Images per second a loader sustains, or a step fed by it.

    Args:
        loader (Iterable): Yields collated batches (``inputs`` first).
        workers (int): Its worker processes (``num_workers``).
        batches (int): Batches to time at least (see
            :func:`loader_batches`).
        step (Callable, optional): Run on every batch (a training step);
            None times the loader alone.
        sync (Callable, optional): Waits for queued device work (e.g.
            ``torch.cuda.synchronize``) before each clock reading.

    Returns:
        dict: ``images_per_s``, ``warm_batches`` and ``timed_batches``.
    """
    warm, timed = loader_batches(workers, batches,
                                 getattr(loader, 'prefetch_factor', None))
    it = iter(loader)

    def take(i: int) -> dict:
        try:
            return next(it)
        except StopIteration:
            raise ValueError(
                f'time_loader: the loader ended after {i} batches, but '
                f'{workers} workers need {warm} untimed + {timed} timed '
                'batches; give it more samples or time fewer batches.'
            ) from None

    for i in range(warm):
        batch = take(i)
        if step is not None:
            step(batch)
    if sync is not None:
        sync()
    start, seen = time.perf_counter(), 0
    for i in range(timed):
        batch = take(warm + i)
        seen += batch_images(batch)
        if step is not None:
            step(batch)
    if sync is not None:
        sync()
    return dict(
        images_per_s=seen / (time.perf_counter() - start),
        warm_batches=warm,
        timed_batches=timed)


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_steps(model, optim_wrapper, data, warmup: int, iters: int,
               device) -> Tuple[float, float]:
    """Seconds per training step, and the loss of the last step."""
    for _ in range(warmup):
        model.train_step(data, optim_wrapper)
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        log_vars = model.train_step(data, optim_wrapper)
    sync(device)
    return (time.perf_counter() - start) / iters, float(
        log_vars['loss'].detach())


def time_teachers(model, data, warmup: int, iters: int, device,
                  dtype: Optional[torch.dtype]) -> Optional[float]:
    """Seconds per step spent in the frozen teachers alone (forward)."""
    if not hasattr(model, 'teacher_targets'):
        return None
    from mmmoma.models.utils import random_token_mask
    images = model.data_preprocessor(data, True)['inputs']
    images = images[0] if isinstance(images, (list, tuple)) else images
    ids_keep, ids_restore, _ = random_token_mask(
        images.shape[0], model.num_patches, model.mask_ratio, images.device)

    def run():
        with torch.autocast(device.type, dtype=dtype,
                            enabled=dtype is not None):
            for name in model.teachers:
                model.teacher_targets(name, images, ids_keep, ids_restore)

    for _ in range(warmup):
        run()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        run()
    sync(device)
    return (time.perf_counter() - start) / iters


def profile_steps(model, optim_wrapper, data, steps: int, device,
                  top: int = 25) -> List[dict]:
    """The ``top`` ops by their own time (device time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile
    cuda = device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            model.train_step(data, optim_wrapper)
        sync(device)
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key),
                    reverse=True)[:top]
    return [{
        'op': e.key,
        'self_ms_per_step': getattr(e, key) / 1e3 / steps,
        'calls_per_step': e.count / steps
    } for e in events]


def build_loader(cfg: Config, batch_size: int):
    """The config's train dataloader, with ``batch_size`` images a batch."""
    from mmengine.runner import Runner
    loader_cfg = dict(cfg.train_dataloader, batch_size=batch_size)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        return Runner.build_dataloader(loader_cfg)


def time_dataloader(cfg: Config, batch_size: int, batches: int) -> dict:
    """Images per second the config's train dataloader gives, in steady
    state (:func:`time_loader`)."""
    return time_loader(
        build_loader(cfg, batch_size), cfg.train_dataloader.get(
            'num_workers', 0), batches)


def time_steps_with_data(model, optim_wrapper, cfg: Config, batch_size: int,
                         batches: int, device) -> dict:
    """Images per second of training steps fed by the train dataloader."""
    return time_loader(
        build_loader(cfg, batch_size),
        cfg.train_dataloader.get('num_workers', 0),
        batches,
        step=lambda batch: model.train_step(batch, optim_wrapper),
        sync=lambda: sync(device))


def peak_memory(device: torch.device) -> Dict[str, float]:
    """Peak GPU memory of tensors, or the process's peak RSS on a CPU."""
    if device.type == 'cuda':
        return {'gpu_peak_allocated_gib':
                torch.cuda.max_memory_allocated(device) / 2**30}
    # ru_maxrss is in KiB on Linux: the whole process, not only tensors.
    return {'cpu_peak_rss_gib':
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def format_rows(rows: List[Tuple[str, object]]) -> str:
    """``(label, value)`` rows as two aligned columns."""
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)


def report(table: str, result: dict, out: Optional[str]) -> None:
    """Print ``table``; write ``result`` as JSON to ``out`` if given.

    Args:
        table (str): The printed summary.
        result (dict): Everything measured (JSON values).
        out (str, optional): The JSON file, written atomically.
    """
    print(table)
    if out:
        with atomic_write(out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {out}')
