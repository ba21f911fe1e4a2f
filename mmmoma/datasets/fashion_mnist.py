"""FashionMNISTIdx: Fashion-MNIST read from its idx files, kept in memory."""
import gzip
import os
import os.path as osp
import zlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import FASHIONMNIST_CATEGORITES
from mmpretrain.registry import DATASETS

#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
DEFAULT_ROOT = '/usr/share/datasets/fashion-mnist'
SPLITS = {'train': 'train', 'test': 't10k'}
RESIZE_MODES = ('pad', 'resize')
IMAGE_MAGIC = 0x00000803  # idx3, unsigned bytes
LABEL_MAGIC = 0x00000801  # idx1, unsigned bytes


def idx_path(root: str, stem: str) -> str:
    """The gzipped file if present, else the unpacked one."""
    path = osp.join(root, stem)
    return path + '.gz' if osp.isfile(path + '.gz') else path


def read_idx(path: str, magic: int) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a uint8 array.

    Every way the file can be damaged (a gzip stream cut short or failing
    its CRC, a wrong magic number, fewer or more values than the header
    promises) fails with one message that names the file and the problem,
    not with a bare ``EOFError`` from the gzip module.

    Args:
        path (str): The file.
        magic (int): The expected magic number, ``0x803`` for images
            (N, H, W) or ``0x801`` for labels (N, ).

    Returns:
        np.ndarray: uint8, (N, H, W) for images or (N, ) for labels.

    Raises:
        ValueError: The file is not a complete idx file of that kind.
    """
    allowed = ('Allowed: a complete Fashion-MNIST idx file, gzipped or not; '
               're-copy it, or reinstall the Debian package '
               'dataset-fashion-mnist.')
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except EOFError as err:
        raise ValueError(
            f'{path}: the gzip stream is truncated ({err}); the file was cut '
            f'short, e.g. by an interrupted copy. {allowed}') from err
    except (gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f'{path}: not a valid gzip file ({err}). '
                         f'{allowed}') from err
    except OSError as err:
        raise ValueError(f'{path}: cannot be read ({err}). {allowed}') from err
    ndim = magic & 0xFF
    offset = 4 + 4 * ndim
    found = int.from_bytes(data[:4], 'big')
    if len(data) < 4 or found != magic:
        problem = (f'the file holds only {len(data)} bytes' if len(data) < 4
                   else f'magic number {found:#010x}')
        raise ValueError(f'{path}: {problem}, expected magic number '
                         f'{magic:#010x}; not a Fashion-MNIST '
                         f'{"image" if ndim == 3 else "label"} idx file. '
                         f'{allowed}')
    if len(data) < offset:
        raise ValueError(f'{path}: the header is cut short ({len(data)} of '
                         f'{offset} bytes); the file is truncated. {allowed}')
    shape = tuple(
        int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    expected = int(np.prod(shape))
    if array.size != expected:
        problem = ('the file is truncated' if array.size < expected else
                   'extra bytes follow the data')
        raise ValueError(f'{path}: the header says {shape} ({expected} '
                         f'values), but the file holds {array.size}; '
                         f'{problem}. {allowed}')
    return array.reshape(shape)


def fit_images(images: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Bring (N, h, w) uint8 images to (N, size, size).

    ``'pad'`` centres them on a black canvas (Fashion-MNIST's background is
    0) and needs ``size >= h, w``; ``'resize'`` interpolates bilinearly.
    """
    n, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if mode == 'pad':
        if size < max(h, w):
            raise ValueError(
                f'FashionMNISTIdx: img_size={size} is smaller than the '
                f"{h}x{w} images; use resize_mode='resize' to shrink.")
        top, left = (size - h) // 2, (size - w) // 2
        out = np.zeros((n, size, size), dtype=np.uint8)
        out[:, top:top + h, left:left + w] = images
        return out
    import cv2
    return np.stack([
        cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        for img in images
    ])


class GrayImages(BaseDataset):
    """A dataset whose gray (N, H, W) uint8 images are held in memory
    (``self.images``, set by ``load_data_list``) and served as (H, W, 3)
    ``img``; one small info dict per image."""

    def sample_infos(self, labels: np.ndarray) -> List[dict]:
        """``load_data_list``'s result for images 0..N-1 with ``labels``."""
        infos = []
        for i, label in enumerate(labels.tolist()):
            info = dict(img_index=i)
            if self.with_label:
                info['gt_label'] = label
            infos.append(info)
        return infos

    def get_data_info(self, idx: int) -> dict:
        """The info of sample ``idx`` with ``img`` (H, W, 3) uint8 added."""
        info = super().get_data_info(idx)
        gray = self.images[info['img_index']]
        img = np.repeat(gray[:, :, None], 3, axis=2)  # (H, W, 3)
        info.update(
            img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info

    def get_gt_labels(self) -> np.ndarray:
        """All labels, (N, ) int64, without decoding any image."""
        if not self.with_label:
            raise RuntimeError(f'{type(self).__name__}: built with '
                               'with_label=False; there are no labels to '
                               'return.')
        return np.array([info['gt_label'] for info in self.data_list],
                        dtype=np.int64)


@DATASETS.register_module()
class FashionMNISTIdx(GrayImages):
    """`Fashion-MNIST <https://github.com/zalandoresearch/fashion-mnist>`_
    read from the four idx files, with no download.

    The images are decoded once into one uint8 array (60k train images at
    28x28 are 47 MB), fitted to ``img_size`` and turned into ``img``
    (H, W, 3) uint8 only when a sample is fetched, so the usual MMPretrain
    transforms (``RandomResizedCrop``, ``ColorJitter``, ``PackInputs``) run
    on it without ``LoadImageFromFile``. The same class serves unlabeled
    pretraining (``with_label=False``) and labeled evaluation.

    Args:
        data_root (str): The folder with ``{train,t10k}-images-idx3-ubyte``
            and ``{train,t10k}-labels-idx1-ubyte`` (``.gz`` or unpacked).
            Defaults to ``'/usr/share/datasets/fashion-mnist'``, where the
            Debian package ``dataset-fashion-mnist`` installs them.
        split (str): ``'train'`` (60,000 images) or ``'test'`` (10,000).
            Defaults to ``'train'``.
        with_label (bool): Whether samples carry ``gt_label``.
            Defaults to True.
        img_size (int): Side of the square images handed to the pipeline.
            Defaults to 28 (the files' own size).
        resize_mode (str): How 28x28 becomes ``img_size``: ``'pad'`` (black
            border, ``img_size >= 28``) or ``'resize'`` (bilinear).
            Defaults to ``'pad'``.
        num_samples (int, optional): Keep only the first ``num_samples``
            images of the split (the files are in random class order, so
            classes stay about balanced). Defaults to None: all.
        pipeline (Sequence): Transforms applied to each sample.
            Defaults to ().
        test_mode (bool): Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': FASHIONMNIST_CATEGORITES}

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 split: str = 'train',
                 with_label: bool = True,
                 img_size: int = 28,
                 resize_mode: str = 'pad',
                 num_samples: Optional[int] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'FashionMNISTIdx: split={split!r} is not '
                             f'supported; allowed: {tuple(SPLITS)}.')
        if resize_mode not in RESIZE_MODES:
            raise ValueError(
                f'FashionMNISTIdx: resize_mode={resize_mode!r} is not '
                f'supported; allowed: {RESIZE_MODES}.')
        if not (isinstance(img_size, int) and img_size > 0):
            raise ValueError(f'FashionMNISTIdx: img_size={img_size!r} must '
                             'be a positive int.')
        if num_samples is not None and not (isinstance(num_samples, int)
                                            and num_samples > 0):
            raise ValueError(f'FashionMNISTIdx: num_samples={num_samples!r} '
                             'must be a positive int or None.')
        self.split = split
        self.with_label = with_label
        self.img_size = img_size
        self.resize_mode = resize_mode
        self.num_samples = num_samples
        self.images: np.ndarray  # (N, img_size, img_size) uint8
        # Per-sample infos are tiny (an index and a label): serialising
        # them buys nothing, the images live in one shared array.
        kwargs.setdefault('serialize_data', False)
        super().__init__(
            ann_file='',
            data_root=os.path.expanduser(data_root),
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)

    def files(self) -> Tuple[str, str]:
        """The (images, labels) idx files of this split."""
        stem = SPLITS[self.split]
        return (idx_path(self.data_root, f'{stem}-images-idx3-ubyte'),
                idx_path(self.data_root, f'{stem}-labels-idx1-ubyte'))

    def load_data_list(self) -> List[dict]:
        """Decode the idx files once; one small info dict per image."""
        image_file, label_file = self.files()
        missing = [p for p in (image_file, label_file) if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'FashionMNISTIdx: data_root={self.data_root!r} has no '
                f'{", ".join(osp.basename(p) for p in missing)} (.gz or '
                'unpacked). Install Fashion-MNIST with `sudo apt-get install '
                f'dataset-fashion-mnist` (files go to {DEFAULT_ROOT}), or '
                'set data_root to a folder holding the four idx files '
                '(train/t10k-images-idx3-ubyte, '
                'train/t10k-labels-idx1-ubyte, .gz or unpacked).')
        images = read_idx(image_file, IMAGE_MAGIC)
        labels = read_idx(label_file, LABEL_MAGIC)
        if len(images) != len(labels):
            raise ValueError(f'FashionMNISTIdx: {image_file} has '
                             f'{len(images)} images but {label_file} has '
                             f'{len(labels)} labels.')
        if self.num_samples is not None:
            images = images[:self.num_samples]
            labels = labels[:self.num_samples]
        self.images = fit_images(images, self.img_size, self.resize_mode)
        return self.sample_infos(labels)

    def extra_repr(self) -> List[str]:
        """Extra lines of ``repr``."""
        return [
            f'Data root: \t{self.data_root}', f'Split: \t{self.split}',
            f'With label: \t{self.with_label}',
            f'Image size: \t{self.img_size} ({self.resize_mode})'
        ]
