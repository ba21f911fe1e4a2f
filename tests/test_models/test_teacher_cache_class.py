"""TeacherCache on its own: a miss until a batch is committed, the stored
targets back on a hit, a changed input or an index past the end refused."""
import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.models.teacher_cache import TeacherCache, fingerprint


def test_fingerprint_tells_a_flip_from_the_same_image():
    images = torch.randn(2, 3, 8, 8)
    assert torch.equal(fingerprint(images), fingerprint(images.clone()))
    assert not torch.isclose(
        fingerprint(images.flip(-1)), fingerprint(images)).any()


def test_miss_store_commit_hit():
    cache = TeacherCache(size=4, dtype=torch.float16)
    images = torch.randn(2, 3, 8, 8)
    ids = torch.tensor([3, 1])
    assert cache.lookup(images, ids) is None
    target = torch.randn(2, 5, 6)
    cache.store('mae', ids, target)
    assert cache.lookup(images, ids) is None  # not committed yet
    cache.commit(images, ids)
    got = cache.lookup(images, ids)
    assert set(got) == {'mae'} and got['mae'].dtype == torch.float32
    assert torch.equal(got['mae'], target.half().float())
    assert cache.lookup(images, torch.tensor([3, 0])) is None  # 0: a miss


def test_changed_input_and_index_past_the_end_are_errors():
    cache = TeacherCache(size=2, dtype=torch.float32)
    images = torch.randn(2, 3, 8, 8)
    ids = torch.tensor([0, 1])
    cache.store('mae', ids, torch.randn(2, 5, 6))
    cache.commit(images, ids)
    with pytest.raises(RuntimeError, match='sample 1 changed'):
        cache.lookup(torch.stack([images[0], images[1].flip(-1)]), ids)
    with pytest.raises(ValueError, match=r'teacher_cache.size=2 .*idx 2'):
        cache.lookup(images, torch.tensor([0, 2]))


def test_build_from_the_option():
    assert TeacherCache.build(None, mask_teacher_input=False) is None
    cache = TeacherCache.build(dict(size=3, dtype='bfloat16'), False)
    assert cache.size == 3 and cache.dtype == torch.bfloat16
    with pytest.raises(ValueError, match='mask_teacher_input=True'):
        TeacherCache.build(dict(size=3), mask_teacher_input=True)
