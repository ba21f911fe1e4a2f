"""MomaAlgorithm's teacher_cache: the same training as recomputing the
targets every step, without running the teachers after the first epoch; a
changed input, an index past the cache or a bad option is an error."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmmoma  # noqa: F401
from test_moma_fast import tiny_cfg  # the two-teacher 32 px model

NUM_SAMPLES = 6


def build(**overrides):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model.train()


def dataset_images():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(NUM_SAMPLES, 3, 32, 32, generator=gen)


def batch(images, ids):
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in ids]
    return images[ids], samples


def count_teacher_runs(model):
    """Wrap teacher_targets; returns the list its calls append to."""
    calls = []
    original = model.teacher_targets

    def counted(name, *args, **kwargs):
        calls.append(name)
        return original(name, *args, **kwargs)

    model.teacher_targets = counted
    return calls


def train(model, epochs, images):
    """SGD over shuffled batches of 2; per-step losses and final weights."""
    optim = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    order = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(NUM_SAMPLES, generator=order).tolist()
        for start in range(0, NUM_SAMPLES, 2):
            x, samples = batch(images, perm[start:start + 2])
            out = model.loss(x, samples)
            optim.zero_grad()
            sum(out.values()).backward()
            optim.step()
            losses.append({k: v.detach().clone() for k, v in out.items()})
    return losses, copy.deepcopy(model.state_dict())


def test_cached_training_equals_recomputed_and_skips_teachers():
    images = dataset_images()
    ref = build()
    model = build(teacher_cache=dict(size=NUM_SAMPLES))
    model.load_state_dict(ref.state_dict())  # same mask_seed
    calls = count_teacher_runs(model)
    ref_losses, ref_state = train(ref, 3, images)
    losses, state = train(model, 3, images)
    # Epoch 1 runs both teachers on each of its 3 batches, then never again.
    assert calls == ['mocov3', 'mae'] * 3
    assert len(losses) == len(ref_losses) == 9
    for got, want in zip(losses, ref_losses):
        for key in want:
            assert torch.equal(got[key], want[key]), key
    assert set(state) == set(ref_state)
    for key in ref_state:
        assert torch.equal(state[key], ref_state[key]), key
    assert not any('cache' in key for key in state)  # not in checkpoints


def test_half_precision_cache_is_close():
    images = dataset_images()
    ref = build()
    model = build(teacher_cache=dict(size=NUM_SAMPLES, dtype='float16'))
    model.load_state_dict(ref.state_dict())
    ref_losses, _ = train(ref, 2, images)
    losses, _ = train(model, 2, images)
    for got, want in zip(losses, ref_losses):
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=2e-3, atol=0)


def test_changed_input_is_an_error():
    images = dataset_images()
    model = build(teacher_cache=dict(size=NUM_SAMPLES))
    x, samples = batch(images, [0, 1])
    model.loss(x, samples)
    flipped = x.clone()
    flipped[1] = x[1].flip(-1)  # what RandomFlip would do
    with pytest.raises(RuntimeError,
                       match=r'teacher_cache .*sample 1 changed.*'
                       r'RandomFlip.*teacher_cache=None'):
        model.loss(flipped, samples)
    model.loss(x, samples)  # the same images still hit the cache


def test_index_past_the_cache_is_an_error():
    images = dataset_images()
    model = build(teacher_cache=dict(size=4))
    x, samples = batch(images, [1, 5])
    with pytest.raises(ValueError,
                       match=r'teacher_cache.size=4 .*sample_idx 5'):
        model.loss(x, samples)


def test_missing_sample_idx_is_an_error():
    model = build(teacher_cache=dict(size=NUM_SAMPLES))
    x = dataset_images()[:2]
    with pytest.raises(ValueError, match='teacher_cache needs the sample_idx'):
        model.loss(x, [DataSample(), DataSample()])


@pytest.mark.parametrize('cache, extra, match', [
    (dict(size=0), {}, r'teacher_cache.size=0 must be a positive int'),
    (dict(size='10'), {}, r"teacher_cache.size='10' must be a positive int"),
    (dict(size=True), {}, r'teacher_cache.size=True must be a positive int'),
    (dict(), {}, r'teacher_cache.size=None must be a positive int'),
    (dict(size=4, dtype='int8'), {},
     r"teacher_cache.dtype='int8' is not supported; allowed: \['float32'"),
    (dict(size=4, sizes=4), {}, r"unknown key\(s\) \['sizes'\]"),
    (8, {}, r'teacher_cache=8 must be None or a dict'),
    (dict(size=4), dict(mask_teacher_input=True),
     r'mask_teacher_input=True; set teacher_cache=None'),
])
def test_bad_cache_options_fail_at_build(cache, extra, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_cfg(teacher_cache=cache, **extra))
