"""Steady-state throughput of a dataloader, alone or feeding a step."""
import time
from typing import Callable, Iterable, Optional


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
