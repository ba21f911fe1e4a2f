"""FastRandomResizedCrop: MMPretrain's crop, resized by a torch kernel."""
import functools
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

INTERPOLATIONS = ('bilinear', 'bicubic')


@functools.lru_cache(maxsize=None)
def _uint8_antialias_supported(mode: str) -> bool:
    """Whether this torch resizes uint8 with antialiasing (torch >= 2.1)."""
    probe = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    try:
        F.interpolate(probe, size=(2, 2), mode=mode, antialias=True)
    except (RuntimeError, NotImplementedError):
        return False
    return True


def resize_antialias(img: np.ndarray, size: Tuple[int, int],
                     mode: str) -> np.ndarray:
    """Resize an (H, W, C) image like PIL's ``resize`` with ``mode``.

    PyTorch's antialiased kernels use PIL's filters (bicubic with a = -0.5,
    support widened by the downscale factor); on uint8 CPU tensors in
    channels-last layout they run a vectorised path several times faster
    than PIL's. Results match PIL to within one intensity level for all but
    a few border pixels (see ``tests/test_datasets/``).

    Args:
        img (np.ndarray): (H, W, C), uint8 or floating point.
        size (tuple[int, int]): Output (h, w).
        mode (str): ``'bilinear'`` or ``'bicubic'``.

    Returns:
        np.ndarray: (h, w, C), the dtype of ``img``.
    """
    # (H, W, C) -> (1, C, H, W) view with channels-last strides.
    tensor = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0,
                                                                 1)[None]
    if img.dtype == np.uint8 and not _uint8_antialias_supported(mode):
        out = F.interpolate(
            tensor.float(), size=size, mode=mode, antialias=True)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = F.interpolate(tensor, size=size, mode=mode, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


@TRANSFORMS.register_module()
class FastRandomResizedCrop(RandomResizedCrop):
    """MMPretrain's ``RandomResizedCrop``, resized by torch instead of PIL.

    The crop is drawn by the parent's ``rand_crop_params`` (same arguments,
    same calls to NumPy's generator, so the same boxes for the same seed);
    only the resize differs: PyTorch's antialiased uint8 kernel, which
    computes PIL's bilinear / bicubic filter (the resize of MAE's and MoCo
    v3's torchvision pipelines and of MMPretrain's ``backend='pillow'``)
    about 7x faster on one core. With MOMA's cheap training step, image
    decoding and this resize bound how many images per second a node's
    dataloader workers sustain (``tools/analysis_tools/data_benchmark.py``).

    Args:
        scale (Sequence | int): Output (h, w), or one int for a square.
        crop_ratio_range (tuple): Range of the crop's area relative to the
            image. Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple): Range of the crop's aspect ratio.
            Defaults to (3. / 4., 4. / 3.).
        max_attempts (int): Draws before the central-crop fallback.
            Defaults to 10.
        interpolation (str): ``'bilinear'`` or ``'bicubic'`` (the filters
            torch antialiases). Defaults to 'bicubic'.
        backend (str): Only ``'torch'``; MMPretrain's ``RandomResizedCrop``
            offers ``'cv2'`` and ``'pillow'``. Defaults to 'torch'.
    """

    def __init__(self,
                 scale: Union[Sequence, int],
                 crop_ratio_range: Tuple[float, float] = (0.08, 1.0),
                 aspect_ratio_range: Tuple[float, float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 interpolation: str = 'bicubic',
                 backend: str = 'torch') -> None:
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f'FastRandomResizedCrop: interpolation={interpolation!r} is '
                f'not supported; allowed: {INTERPOLATIONS} (for nearest, '
                "area or lanczos use MMPretrain's RandomResizedCrop).")
        if backend != 'torch':
            raise ValueError(
                f'FastRandomResizedCrop: backend={backend!r} is not '
                "supported; allowed: 'torch' (it always resizes with torch; "
                "for 'cv2' or 'pillow' use MMPretrain's RandomResizedCrop).")
        sizes = tuple(scale) if isinstance(scale, Sequence) else (scale,
                                                                  scale)
        if len(sizes) != 2 or not all(
                isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(
                f'FastRandomResizedCrop: scale={scale!r} must be a positive '
                'int or an (h, w) pair of them.')
        super().__init__(
            scale=scale,
            crop_ratio_range=crop_ratio_range,
            aspect_ratio_range=aspect_ratio_range,
            max_attempts=max_attempts,
            interpolation=interpolation,
            backend='pillow')  # the parent's check; never used here
        self.backend = backend

    def transform(self, results: dict) -> dict:
        """Crop ``results['img']`` at random and resize it to ``scale``.

        Args:
            results (dict): With ``img``, (H, W) or (H, W, C), uint8 or
                floating point.

        Returns:
            dict: ``img`` (h, w[, C]) of the same dtype, and ``img_shape``.
        """
        img = results['img']
        if not (img.dtype == np.uint8
                or np.issubdtype(img.dtype, np.floating)) or img.ndim not in (
                    2, 3):
            raise TypeError(
                f'FastRandomResizedCrop: results["img"] is a {img.ndim}-d '
                f'{img.dtype} array; allowed: (H, W) or (H, W, C), uint8 or '
                'floating point.')
        offset_h, offset_w, target_h, target_w = self.rand_crop_params(img)
        crop = img[offset_h:offset_h + target_h, offset_w:offset_w + target_w]
        out = resize_antialias(crop if img.ndim == 3 else crop[..., None],
                               tuple(self.scale), self.interpolation)
        results['img'] = out if img.ndim == 3 else out[..., 0]
        results['img_shape'] = results['img'].shape
        return results
