"""The Fashion-MNIST mosaics: deterministic, split-pure, labelled by the
threshold rule, read by MMSeg with the garment names."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.apis import make_fmnist_scenes
from mmmoma.datasets.fashion_mnist import IMAGE_MAGIC, read_idx
from mmmoma.datasets.fmnist_mosaics import (MOSAIC_CLASSES, compose_mosaic,
                                            make_mosaics)
from mmmoma.datasets.fmnist_scenes import CLASSES

FINETUNE = ('configs/study/'
            'upernet_vit-tiny-p4_moma-pre_1xb16-300i_fmnist-mosaics-84x84.py')
NUM = dict(num_train=6, num_val=4)


def read_split(root: Path, split: str) -> list:
    """(image (H, W, 3), label map (H, W)) of every mosaic of a split."""
    names = sorted(p.name for p in (root / 'img_dir' / split).iterdir())
    return [(np.asarray(Image.open(root / 'img_dir' / split / n)),
             np.asarray(Image.open(root / 'ann_dir' / split / n)))
            for n in names]


def cells(image: np.ndarray, side: int = 28) -> list:
    """The gray cells (side, side) of a mosaic, row by row."""
    gray = image[..., 0]
    return [gray[r:r + side, c:c + side]
            for r in range(0, gray.shape[0], side)
            for c in range(0, gray.shape[1], side)]


@pytest.fixture(scope='module')
def mosaics(fake_fmnist, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('mosaics') / 'data'
    make_mosaics(str(out), str(fake_fmnist), seed=3, **NUM)
    return out


def test_same_seed_same_files_other_seed_other_files(mosaics, fake_fmnist,
                                                     tmp_path):
    make_mosaics(str(tmp_path / 'again'), str(fake_fmnist), seed=3, **NUM)
    make_mosaics(str(tmp_path / 'other'), str(fake_fmnist), seed=4, **NUM)
    files = sorted(p.relative_to(mosaics) for p in mosaics.rglob('*.png'))
    assert len(files) == 2 * (6 + 4)
    for f in files:
        assert (tmp_path / 'again' / f).read_bytes() == (mosaics /
                                                         f).read_bytes()
    assert any((tmp_path / 'other' / f).read_bytes() != (mosaics /
                                                         f).read_bytes()
               for f in files)


def test_cells_are_items_of_their_own_split_only(mosaics, fake_fmnist):
    items = {
        split: {
            item.tobytes()
            for item in read_idx(
                str(fake_fmnist / f'{split}-images-idx3-ubyte.gz'),
                IMAGE_MAGIC)
        }
        for split in ('train', 't10k')
    }
    assert not items['train'] & items['t10k']
    for split, source, other in (('train', 'train', 't10k'),
                                 ('val', 't10k', 'train')):
        pasted = [c for image, _ in read_split(mosaics, split)
                  for c in cells(image) if c.any()]
        assert pasted, split
        assert all(c.tobytes() in items[source] for c in pasted), split
        assert not any(c.tobytes() in items[other] for c in pasted), split


def test_validation_mosaics_do_not_depend_on_the_train_count(
        mosaics, fake_fmnist, tmp_path):
    make_mosaics(str(tmp_path / 'more'), str(fake_fmnist), seed=3,
                 num_train=9, num_val=4)
    for (a, la), (b, lb) in zip(read_split(mosaics, 'val'),
                                read_split(tmp_path / 'more', 'val')):
        assert (a == b).all() and (la == lb).all()


def test_label_is_the_class_above_the_threshold_background_elsewhere():
    item = np.zeros((28, 28), np.uint8)
    item[2, :4] = (29, 30, 31, 255)
    item[10:20, 10:20] = 200
    rng = np.random.default_rng(0)
    image, label = compose_mosaic(rng, item[None], np.array([6]), cells=2,
                                  cell_size=28, empty_prob=0.0,
                                  threshold=30)
    assert image.shape == (56, 56, 3) and label.shape == (56, 56)
    assert (image == np.tile(item, (2, 2))[..., None]).all()  # gray, tiled
    expected = np.where(item > 30, 7, 0)  # Fashion-MNIST class 6 -> label 7
    assert (label == np.tile(expected, (2, 2))).all()
    assert list(label[2, :4]) == [0, 0, 7, 7]


def test_empty_cells_are_black_background_about_the_given_share():
    item = np.full((1, 28, 28), 255, np.uint8)
    rng = np.random.default_rng(0)
    empty = 0
    for _ in range(100):
        image, label = compose_mosaic(rng, item, np.array([0]), cells=3,
                                      cell_size=28, empty_prob=0.25,
                                      threshold=30)
        for c, lc in zip(cells(image), cells(label[..., None])):
            assert (c == 0).all() == (lc == 0).all()
            empty += int((c == 0).all())
    assert 0.2 < empty / 900 < 0.3


def test_dataset_names_background_and_the_ten_garments(mosaics):
    from mmseg.registry import DATASETS
    assert MOSAIC_CLASSES == ('background', ) + CLASSES
    assert CLASSES == ('T-shirt/top', 'Trouser', 'Pullover', 'Dress',
                       'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                       'Ankle boot')
    cfg = Config.fromfile(FINETUNE)
    with DefaultScope.overwrite_default_scope('mmseg'):
        val = DATASETS.build(
            dict(cfg.val_dataloader.dataset, data_root=str(mosaics)))
    assert val.metainfo['classes'] == MOSAIC_CLASSES
    assert len(val.metainfo['palette']) == 11
    assert len(val) == 4
    written = read_split(mosaics, 'val')
    for i, (_, label) in enumerate(written):
        # label 0 stays background (no reduce_zero_label, no 255)
        gt = val[i]['data_samples'].gt_sem_seg.data[0].numpy()
        assert (gt == label).all()
    assert {0} < set(np.unique(np.stack([lb for _, lb in written])))


def test_command_line_writes_mosaics_and_names_bad_flags(fake_fmnist,
                                                         tmp_path):
    meta = make_fmnist_scenes.main([
        str(tmp_path / 'm'), '--mosaics', '--fmnist-root', str(fake_fmnist),
        '--num-train', '2', '--num-val', '1', '--cells', '2', '--size', '56'
    ])
    assert meta['classes'] == list(MOSAIC_CLASSES)
    assert meta['reduce_zero_label'] is False
    assert (meta['cells'], meta['cell_size'], meta['threshold'],
            meta['empty_prob']) == (2, 28, 30, 0.25)
    image, label = read_split(tmp_path / 'm', 'train')[0]
    assert image.shape == (56, 56, 3) and label.shape == (56, 56)
    assert (tmp_path / 'm' / 'README.md').is_file()
    for flags, message in ((['--size', '80'], '--size=80'),
                           (['--empty-prob', '1'], '--empty-prob=1.0'),
                           (['--threshold', '255'], '--threshold=255')):
        with pytest.raises(SystemExit, match=message):
            make_fmnist_scenes.main([
                str(tmp_path / 'bad'), '--mosaics', '--fmnist-root',
                str(fake_fmnist), *flags
            ])
    assert not (tmp_path / 'bad').exists()
