"""FashionMNISTIdx against the real idx files and against generated ones."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import mmmoma  # noqa: F401
from mmmoma.datasets import FashionMNISTIdx
from mmmoma.datasets.fashion_mnist import DEFAULT_ROOT

REAL_FILES = [
    Path(DEFAULT_ROOT) / f'{stem}-ubyte.gz'
    for stem in ('train-images-idx3', 'train-labels-idx1',
                 't10k-images-idx3', 't10k-labels-idx1')
]


def write_idx(folder: Path, stem: str, images: np.ndarray,
              labels: np.ndarray, gz: bool) -> None:
    """Write idx3 images (N, H, W) and idx1 labels (N, ) like the originals."""
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    img_bytes = (0x803).to_bytes(4, 'big') + b''.join(
        v.to_bytes(4, 'big') for v in (n, h, w)) + images.tobytes()
    lbl_bytes = ((0x801).to_bytes(4, 'big') + n.to_bytes(4, 'big')
                 + labels.astype(np.uint8).tobytes())
    for name, data in ((f'{stem}-images-idx3-ubyte', img_bytes),
                       (f'{stem}-labels-idx1-ubyte', lbl_bytes)):
        if gz:
            with gzip.open(folder / f'{name}.gz', 'wb') as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def fake_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    write_idx(tmp_path, 'train', images, labels, gz=True)
    write_idx(tmp_path, 't10k', images[:5], labels[:5], gz=False)
    return tmp_path, images, labels


# ---------------------------------------------------------------- real files
@pytest.mark.needs_fmnist
def test_real_splits_sizes_and_balance():
    train = FashionMNISTIdx(split='train')
    test = FashionMNISTIdx(split='test')
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape == (60000, 28, 28)
    assert train.images.dtype == np.uint8
    # 10 balanced classes: 6000 / 1000 images each
    assert np.bincount(train.get_gt_labels()).tolist() == [6000] * 10
    assert np.bincount(test.get_gt_labels()).tolist() == [1000] * 10
    assert train.CLASSES[9] == 'Ankle boot'
    # the images are real photos: a black background and bright objects
    assert train.images.mean() / 255 == pytest.approx(0.2860, abs=1e-3)


@pytest.mark.needs_fmnist
def test_real_sample_matches_raw_file():
    with gzip.open(REAL_FILES[2], 'rb') as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16)
    with gzip.open(REAL_FILES[3], 'rb') as f:
        raw_labels = np.frombuffer(f.read(), np.uint8, offset=8)
    test = FashionMNISTIdx(split='test')
    for idx in (0, 1234, 9999):
        info = test.get_data_info(idx)
        expected = raw[idx * 784:(idx + 1) * 784].reshape(28, 28)
        assert info['img'].shape == (28, 28, 3)
        assert info['img'].dtype == np.uint8
        for c in range(3):  # gray repeated on three channels
            np.testing.assert_array_equal(info['img'][..., c], expected)
        assert info['gt_label'] == raw_labels[idx]


@pytest.mark.needs_fmnist
def test_real_pad_resize_subset_unlabeled():
    padded = FashionMNISTIdx(split='test', img_size=32, num_samples=50)
    plain = FashionMNISTIdx(split='test', num_samples=50)
    assert len(padded) == 50
    img = padded.get_data_info(7)['img']
    assert img.shape == (32, 32, 3)
    np.testing.assert_array_equal(img[2:30, 2:30],
                                  plain.get_data_info(7)['img'])
    assert not img[:2].any() and not img[:, 30:].any()
    resized = FashionMNISTIdx(
        split='test', img_size=56, resize_mode='resize', num_samples=3)
    assert resized.get_data_info(0)['img'].shape == (56, 56, 3)

    unlabeled = FashionMNISTIdx(split='train', with_label=False,
                                num_samples=10)
    assert 'gt_label' not in unlabeled.get_data_info(0)
    with pytest.raises(RuntimeError, match='with_label=False'):
        unlabeled.get_gt_labels()


@pytest.mark.needs_fmnist
def test_real_with_mmpretrain_pipeline_and_dataloader():
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(
        dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='FashionMNISTIdx',
                split='train',
                num_samples=16,
                pipeline=[
                    dict(
                        type='RandomResizedCrop',
                        scale=24,
                        crop_ratio_range=(0.5, 1.0),
                        backend='pillow'),
                    dict(
                        type='RandomApply',
                        transforms=[
                            dict(type='ColorJitter', brightness=0.4,
                                 contrast=0.4)
                        ],
                        prob=1.0),
                    dict(type='RandomFlip', prob=0.5),
                    dict(type='PackInputs'),
                ])))
    batch = next(iter(loader))
    assert batch['inputs'].shape == (8, 3, 24, 24)
    assert batch['inputs'].dtype.is_floating_point is False
    labels = [int(s.gt_label) for s in batch['data_samples']]
    assert labels == loader.dataset.get_gt_labels()[:8].tolist()


# ----------------------------------------------------- generated idx files
def test_generated_gz_and_unpacked(fake_root):
    root, images, labels = fake_root
    train = FashionMNISTIdx(data_root=str(root), split='train')
    test = FashionMNISTIdx(data_root=str(root), split='test')  # unpacked
    assert len(train) == 12 and len(test) == 5
    np.testing.assert_array_equal(train.images, images)
    assert train.get_gt_labels().tolist() == labels.tolist()
    # mmengine's `indices` subsets still map to the right image
    subset = FashionMNISTIdx(data_root=str(root), indices=[3, 7])
    np.testing.assert_array_equal(subset.get_data_info(1)['img'][..., 0],
                                  images[7])
    assert subset.get_data_info(1)['gt_label'] == labels[7]


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match='apt-get install dataset-fashion-mnist'):
        FashionMNISTIdx(data_root=str(tmp_path / 'nowhere'))


def test_bad_file_and_arguments(tmp_path, fake_root):
    root = fake_root[0]
    bad = tmp_path / 'bad'
    bad.mkdir()
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'):
        (bad / name).write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match='magic number'):
        FashionMNISTIdx(data_root=str(bad))
    with pytest.raises(ValueError, match='split'):
        FashionMNISTIdx(data_root=str(root), split='val')
    with pytest.raises(ValueError, match='resize_mode'):
        FashionMNISTIdx(data_root=str(root), resize_mode='crop')
    with pytest.raises(ValueError, match='img_size=20 is smaller'):
        FashionMNISTIdx(data_root=str(root), img_size=20)
    with pytest.raises(ValueError, match='num_samples'):
        FashionMNISTIdx(data_root=str(root), num_samples=0)
