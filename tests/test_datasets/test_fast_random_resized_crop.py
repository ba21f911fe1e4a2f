"""FastRandomResizedCrop against MMPretrain's PIL-backed RandomResizedCrop."""
import numpy as np
import pytest
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

import mmmoma  # noqa: F401
from mmmoma.datasets import FastRandomResizedCrop
from mmmoma.datasets import fast_random_resized_crop as fast_module


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 with smooth shading, hard edges and sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3))
    for c in range(3):
        fx, fy, phase = rng.uniform(0.005, 0.05, 2).tolist() + [
            rng.uniform(0, 6)
        ]
        img[..., c] = 110 + 70 * np.sin(fx * x + fy * y + phase)
    for _ in range(6):  # rectangles: edges the antialiasing must smooth
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 10)
        img[y0:y0 + rng.integers(5, h // 2),
            x0:x0 + rng.integers(5, w // 2)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def both(img: np.ndarray, seed: int, **kwargs):
    """Outputs of the fast and the PIL transform on the same random draw."""
    interpolation = kwargs.pop('interpolation', 'bicubic')
    fast = FastRandomResizedCrop(224, interpolation=interpolation, **kwargs)
    ref = RandomResizedCrop(
        224, interpolation=interpolation, backend='pillow', **kwargs)
    out = []
    for transform in (fast, ref):
        np.random.seed(seed)
        out.append(transform(dict(img=img.copy()))['img'])
        out.append(np.random.rand())  # the generator's state afterwards
    return out


@pytest.mark.parametrize('interpolation', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('shape', [(375, 500), (512, 512), (90, 120)])
def test_matches_pil_resize(shape, interpolation):
    # (90, 120) crops are upsampled to 224; the others mostly downsampled.
    img = photo_like(*shape, seed=shape[0])
    diffs = []
    for seed in range(12):
        fast, fast_next, ref, ref_next = both(
            img, seed, crop_ratio_range=(0.2, 1.0),
            interpolation=interpolation)
        assert fast.shape == ref.shape == (224, 224, 3)
        assert fast.dtype == np.uint8
        assert fast_next == ref_next  # same draws from NumPy's generator
        diffs.append(np.abs(fast.astype(int) - ref.astype(int)))
    diffs = np.stack(diffs)
    # Same crops, same filter: rounding differences only.
    assert diffs.mean() < 0.05
    assert (diffs > 1).mean() < 1e-3
    # A different crop would differ everywhere (guards the checks above).
    other = both(img, 99, crop_ratio_range=(0.2, 1.0))[2]
    assert np.abs(other.astype(int) - ref.astype(int)).mean() > 5


def test_central_crop_fallback_and_rectangular_scale():
    img = photo_like(60, 600)  # too wide for any draw at max_attempts=0
    fast = FastRandomResizedCrop((96, 128), max_attempts=0)
    ref = RandomResizedCrop((96, 128), max_attempts=0, backend='pillow',
                            interpolation='bicubic')
    got = fast(dict(img=img.copy()))
    want = ref(dict(img=img.copy()))
    assert got['img'].shape == got['img_shape'] == (96, 128, 3)
    assert np.abs(got['img'].astype(int) -
                  want['img'].astype(int)).mean() < 0.05


def test_gray_float_and_fallback_paths(monkeypatch):
    img = photo_like(200, 300)
    crop = FastRandomResizedCrop(64)
    np.random.seed(3)
    gray = crop(dict(img=img[..., 0].copy()))['img']
    np.random.seed(3)
    color = crop(dict(img=img.copy()))['img']
    assert gray.shape == (64, 64)
    np.testing.assert_array_equal(gray, color[..., 0])
    np.random.seed(3)
    floats = crop(dict(img=img.astype(np.float32)))['img']
    assert floats.dtype == np.float32
    # Float results keep bicubic's overshoot; the uint8 kernel clamps and
    # rounds after each of its two 1-d passes, as PIL does.
    diff = np.abs(np.clip(floats, 0, 255) - color)
    assert diff.max() <= 2.5 and diff.mean() < 0.3
    # A torch without the uint8 kernel: float arithmetic, rounded.
    monkeypatch.setattr(fast_module, '_uint8_antialias_supported',
                        lambda mode: False)
    np.random.seed(3)
    slow = crop(dict(img=img.copy()))['img']
    assert slow.dtype == np.uint8
    diff = np.abs(slow.astype(int) - color.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.3


def test_builds_from_a_pipeline_config():
    transform = TRANSFORMS.build(
        dict(type='FastRandomResizedCrop', scale=224,
             crop_ratio_range=(0.2, 1.0)))
    assert isinstance(transform, RandomResizedCrop)
    assert 'backend=torch' in repr(transform)


@pytest.mark.parametrize('kwargs, match', [
    (dict(interpolation='lanczos'), r"interpolation='lanczos'.*bilinear"),
    (dict(backend='pillow'), r"backend='pillow'.*allowed: 'torch'"),
    (dict(scale=0), r'scale=0 must be a positive int'),
    (dict(scale=(224, )), r'scale=\(224,\) must be'),
])
def test_bad_arguments_name_the_value(kwargs, match):
    kwargs = dict(dict(scale=224), **kwargs)
    with pytest.raises(ValueError, match=match):
        FastRandomResizedCrop(**kwargs)


def test_bad_image_names_its_dtype():
    with pytest.raises(TypeError, match=r'3-d int16 array.*uint8'):
        FastRandomResizedCrop(32)(dict(img=np.zeros((40, 40, 3), np.int16)))
