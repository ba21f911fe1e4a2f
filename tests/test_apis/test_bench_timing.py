"""mmmoma.apis.benchmark.timing: steady-state batches, step calls and a short
loader."""
import pytest
import torch

from mmmoma.apis.benchmark.timing import (batch_images, loader_batches,
                                          time_loader)


class FakeLoader:
    """``length`` batches of 3 images, with a DataLoader's prefetch_factor."""

    def __init__(self, length: int, prefetch_factor=None) -> None:
        self.length = length
        self.prefetch_factor = prefetch_factor

    def __iter__(self):
        for i in range(self.length):
            yield dict(inputs=torch.zeros(3, 1), index=i)


def test_warm_batches_cover_what_the_workers_prefetch():
    assert loader_batches(0, 5) == (1, 5)  # in-process: start-up only
    assert loader_batches(14, 5) == (28, 28)  # 2 prefetched, 2 timed each
    assert loader_batches(4, 5, prefetch_factor=3) == (12, 8)
    assert loader_batches(1, 10) == (2, 10)


def test_times_only_the_steady_batches_and_runs_the_step_on_all():
    seen, syncs = [], []
    result = time_loader(FakeLoader(40, prefetch_factor=2), workers=4,
                         batches=3, step=lambda b: seen.append(b['index']),
                         sync=lambda: syncs.append(1))
    assert result['warm_batches'] == 8 and result['timed_batches'] == 8
    assert seen == list(range(16))  # the step saw every batch taken
    assert len(syncs) == 2  # before and after the timed batches
    assert result['images_per_s'] > 0


def test_views_count_once_per_image():
    assert batch_images(dict(inputs=torch.zeros(5, 3, 2, 2))) == 5
    two_views = [torch.zeros(5, 3, 2, 2), torch.zeros(5, 3, 2, 2)]
    assert batch_images(dict(inputs=two_views)) == 5


def test_a_short_loader_says_how_many_batches_it_needs():
    with pytest.raises(ValueError,
                       match=r'ended after 5 batches.*4 workers need 8 '
                       r'untimed \+ 8 timed'):
        time_loader(FakeLoader(5, prefetch_factor=2), workers=4, batches=3)
