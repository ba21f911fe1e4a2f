"""Each fix in mmmoma.compat: it works, and it stays out of the way."""
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma import compat


def test_mmseg_imports_and_compiled_ops_fail_clearly():
    from mmseg.models.decode_heads import FCNHead, UPerHead  # noqa: F401
    ext = sys.modules['mmcv._ext']
    if not getattr(ext, '__mmmoma_stub__', False):
        pytest.skip('a compiled mmcv is installed: no stand-in needed')
    with pytest.raises(RuntimeError, match='"nms" was called.*mmcv-lite'):
        ext.nms(None)
    with pytest.raises(AttributeError):
        ext.__file__  # introspection must not see a fake attribute


def test_mmcv_fix_does_nothing_when_ops_exist(monkeypatch):
    monkeypatch.delitem(sys.modules, 'mmcv._ext')
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name == 'mmcv._ext':
            return importlib.machinery.ModuleSpec(name, None)
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    assert compat.fix_mmcv_ext() is False
    assert 'mmcv._ext' not in sys.modules


def test_torchvision_transforms_work():
    import torchvision.transforms.functional as F
    out = F.resize(torch.rand(3, 8, 8), [4, 4], antialias=True)
    assert out.shape == (3, 4, 4)
    assert compat.fix_torchvision() is False  # already importable now


def test_runner_checkpoints_load_weights_only_also_on_resume(
        tmp_path, monkeypatch):
    import argparse
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    if not hasattr(torch.serialization, 'add_safe_globals'):
        pytest.skip('torch < 2.4 has no weights_only allowlist')
    # What a Runner checkpoint holds loads under weights_only=True (allowlist).
    runner_like = str(tmp_path / 'epoch_1.pth')
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    torch.save({'message_hub': {'loss': buffer},
                'meta': {'seed': np.int64(3)}}, runner_like)
    ckpt = CheckpointLoader.load_checkpoint(runner_like, map_location='cpu')
    assert list(ckpt['message_hub']['loss'].data[0]) == [1.0, 2.0]
    assert ckpt['message_hub']['loss'].mean() == 1.5
    # Anything else pickled is refused by the loader that Runner.resume and
    # load_from use, even where the environment asks torch for full loads.
    other = str(tmp_path / 'other.pth')
    torch.save({'args': argparse.Namespace(lr=1)}, other)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(Exception, match='Unsupported global'):
        CheckpointLoader.load_checkpoint(other, map_location='cpu')
    assert compat.fix_weights_only_resume() is False  # applied once


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_crafted_pickle_is_refused_outside_resume(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Evil()}, path)
    with pytest.raises(Exception, match='weights_only|Unsupported'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_adjust_hue_negative_factor_wraps_like_numpy1(backend):
    import mmcv
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    original = getattr(mmcv.adjust_hue, '__wrapped_original__', None)
    if original is not None:  # positive factors: same as mmcv's own code
        assert np.array_equal(
            mmcv.adjust_hue(img, 0.2, backend=backend),
            original(img, 0.2, backend=backend))
    shifted = mmcv.adjust_hue(img, -0.2, backend=backend)  # shift -51
    assert shifted.shape == img.shape and not np.array_equal(shifted, img)
    back = mmcv.adjust_hue(shifted, 0.2, backend=backend)  # shift +51
    # Net hue shift 0 (mod 256): only HSV round-off remains.
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 3


def test_mocov3_colorjitter_with_negative_hue():
    from mmpretrain.datasets.transforms import ColorJitter
    jitter = ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.4)
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
    for seed in range(8):  # some draws are negative
        np.random.seed(seed)
        assert jitter({'img': img.copy()})['img'].shape == img.shape


def test_np_in1d():
    a, b = np.array([[1, 5], [3, 7]]), np.array([3, 5])
    assert np.array_equal(np.in1d(a, b), [False, True, True, False])
