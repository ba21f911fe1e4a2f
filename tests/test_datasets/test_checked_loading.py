"""A corrupt image or label map is named, with what is wrong with it.

The checked loading transforms load what the stock ones load; on a damaged
file they raise one message naming it and the problem, also from a
dataloader worker in the middle of an epoch. ``tools/train.py`` puts them
in every project config's pipelines and decodes a small dataset (the
composed Fashion-MNIST scenes) whole before training.
"""
import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import launch
from mmmoma.datasets import (CheckedLoadAnnotations, CheckedLoadImageFromFile,
                             DataFileError)
from mmmoma.datasets.checked_loading import use_checked_loading
from mmmoma.datasets.checks import check_samples
from mmmoma.datasets.fmnist_scenes import make_scenes

ROOT = Path(__file__).resolve().parents[2]
SCENES_CONFIG = (ROOT / 'configs/study/'
                 'upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64.py')
SEG_TINY = ROOT / 'tests/data/configs/seg_tiny_cpu.py'
BAD_SCENE = 5  # 0-based, past the 4 samples a large dataset gets checked


# ---------------------------------------------------------------- damage
def cut(data: bytes) -> bytes:
    return data[:len(data) // 2]


def flip_in_idat(data: bytes) -> bytes:
    data = bytearray(data)
    data[data.index(b'IDAT') + 10] ^= 0xFF
    return bytes(data)


def write(path: Path, array: np.ndarray, fmt: str) -> Path:
    Image.fromarray(array).save(path, fmt)
    return path


def image_array(size=(24, 32)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (*size, 3), dtype=np.uint8)


# (name, format, damage, what the message says)
IMAGE_DAMAGE = [
    ('empty', 'PNG', lambda d: b'', 'the file is empty (0 bytes)'),
    ('png-cut', 'PNG', cut, 'a PNG cut short: its IDAT chunk at byte'),
    ('png-no-iend', 'PNG', lambda d: d[:-12] + b'\0' * 4,
     'a PNG cut short: '),
    ('png-crc', 'PNG', flip_in_idat,
     'a damaged PNG: its IDAT chunk at byte 33 fails its CRC-32 check'),
    ('jpeg-cut', 'JPEG', cut, 'a JPEG cut short: '),
    ('text', 'PNG', lambda d: b'version https://git-lfs.github.com/spec\n',
     "not an image: the file starts with b'version https://"),
]


@pytest.mark.parametrize('fmt,damage,expected',
                         [d[1:] for d in IMAGE_DAMAGE],
                         ids=[d[0] for d in IMAGE_DAMAGE])
def test_damaged_image_is_named(tmp_path, fmt, damage, expected):
    from mmcv.transforms import LoadImageFromFile
    path = write(tmp_path / 'img.x', image_array(), fmt)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataFileError) as info:
        CheckedLoadImageFromFile()(dict(img_path=str(path)))
    message = str(info.value)
    assert message.startswith(f'{path}: {expected}'), message
    assert 'it cannot be decoded as an image' in message
    assert 'Allowed: files that LoadImageFromFile can read' in message
    # The control: the stock transform does not say what is wrong.
    with pytest.raises(Exception) as stock:
        LoadImageFromFile()(dict(img_path=str(path)))
    assert expected.split(':')[0] not in str(stock.value)


def test_unreadable_image_is_named(tmp_path):
    path = tmp_path / 'gone.png'
    with pytest.raises(DataFileError) as info:
        CheckedLoadImageFromFile()(dict(img_path=str(path)))
    assert str(info.value).startswith(
        f'{path}: it cannot be read (FileNotFoundError')


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('fmt', ['PNG', 'JPEG'])
def test_good_image_loads_as_the_stock_transform(tmp_path, fmt, backend):
    from mmcv.transforms import LoadImageFromFile
    path = write(tmp_path / f'img.{fmt.lower()}', image_array(), fmt)
    kwargs = dict(imdecode_backend=backend, to_float32=True)
    ours = CheckedLoadImageFromFile(**kwargs)(dict(img_path=str(path)))
    stock = LoadImageFromFile(**kwargs)(dict(img_path=str(path)))
    assert ours.keys() == stock.keys()
    assert np.array_equal(ours['img'], stock['img'])
    assert ours['img_shape'] == stock['img_shape'] == (24, 32)


def test_ignore_empty_skips_an_undecodable_image(tmp_path):
    path = tmp_path / 'img.png'
    path.write_bytes(b'')
    loader = CheckedLoadImageFromFile(ignore_empty=True)
    assert loader(dict(img_path=str(path))) is None


def seg_results(label: Path, image_shape=None) -> dict:
    results = dict(seg_map_path=str(label), reduce_zero_label=True,
                   seg_fields=[])
    if image_shape is not None:
        results['ori_shape'] = image_shape
        results['img_path'] = 'scene.jpg'
    return results


def test_good_label_map_loads_as_the_stock_transform(tmp_path):
    from mmseg.datasets.transforms import LoadAnnotations
    labels = np.arange(24 * 32).reshape(24, 32).astype(np.uint8) % 11
    path = write(tmp_path / 'label.png', labels, 'PNG')
    ours = CheckedLoadAnnotations(reduce_zero_label=True)(
        seg_results(path, (24, 32)))
    stock = LoadAnnotations(reduce_zero_label=True)(seg_results(path))
    assert np.array_equal(ours['gt_seg_map'], stock['gt_seg_map'])
    assert set(np.unique(ours['gt_seg_map'])) == set(range(10)) | {255}


@pytest.mark.parametrize('damage,shape,expected', [
    (cut, (24, 32), 'a PNG cut short: its IDAT chunk at byte'),
    (lambda d: b'', (24, 32), 'the file is empty (0 bytes)'),
    (None, (24, 30), "a label map of (H, W) = (24, 32), its image "
     'scene.jpg is (24, 30)'),
], ids=['cut', 'empty', 'other-size'])
def test_damaged_label_map_is_named(tmp_path, damage, shape, expected):
    from mmseg.datasets.transforms import LoadAnnotations
    labels = np.random.default_rng(0).integers(0, 11, (24, 32), np.uint8)
    path = write(tmp_path / 'label.png', labels, 'PNG')
    if damage is not None:
        path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataFileError) as info:
        CheckedLoadAnnotations(reduce_zero_label=True)(
            seg_results(path, shape))
    message = str(info.value)
    assert message.startswith(f'{path}: {expected}'), message
    assert 'Allowed: files that LoadAnnotations can read' in message
    if damage is not None:
        # The control: MMSeg names neither the file nor the problem; with
        # OpenCV it fails with "'NoneType' object has no attribute
        # 'squeeze'".
        for backend in ('pillow', 'cv2'):
            with pytest.raises(Exception) as stock:
                LoadAnnotations(reduce_zero_label=True,
                                imdecode_backend=backend)(seg_results(path))
            assert str(path) not in str(stock.value)
            assert expected.split(':')[0] not in str(stock.value)


def test_colour_label_map_is_named(tmp_path):
    path = write(tmp_path / 'label.png', image_array(), 'PNG')
    with pytest.raises(DataFileError) as info:
        CheckedLoadAnnotations(reduce_zero_label=True)(seg_results(path))
    assert str(info.value).startswith(
        f'{path}: a label map of shape (24, 32, 3): 3 channels')


# ---------------------------------------------------------------- scenes
def idx_file(path: Path, magic: int, array: np.ndarray) -> None:
    header = magic.to_bytes(4, 'big') + b''.join(
        d.to_bytes(4, 'big') for d in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def scenes(tmp_path_factory) -> Path:
    """8 training and 2 validation scenes of 32x32, composed by the
    project's generator from generated Fashion-MNIST idx files."""
    root = tmp_path_factory.mktemp('scenes')
    fmnist = root / 'fmnist'
    fmnist.mkdir()
    rng = np.random.default_rng(0)
    for split in ('train', 't10k'):
        idx_file(fmnist / f'{split}-images-idx3-ubyte.gz', 0x803,
                 rng.integers(0, 256, (20, 28, 28)))
        idx_file(fmnist / f'{split}-labels-idx1-ubyte.gz', 0x801,
                 np.arange(20) % 10)
    make_scenes(str(root / 'data'), fmnist_root=str(fmnist), num_train=8,
                num_val=2, size=32, num_items=(1, 2))
    return root / 'data'


def damaged_copy(scenes: Path, tmp: Path, kind: str) -> Path:
    """A copy of the scenes whose training scene BAD_SCENE has its label
    map (``'label'``) or image (``'image'``) cut short."""
    import shutil
    root = tmp / 'scenes'
    shutil.copytree(scenes, root)
    name = f'ADE_train_{BAD_SCENE + 1:08d}'
    path = (root / 'annotations/training' / f'{name}.png' if kind == 'label'
            else root / 'images/training' / f'{name}.jpg')
    path.write_bytes(cut(path.read_bytes()))
    return path


def scenes_dataset(root: Path, checked: bool = True):
    """The training dataset of the study's scenes config, with the
    pipeline tools/train.py gives it."""
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(str(SCENES_CONFIG))
    cfg.train_dataloader.dataset.data_root = str(root)
    if checked:
        use_checked_loading(cfg)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(cfg.train_dataloader.dataset)


@pytest.mark.parametrize('kind', ['label', 'image'])
def test_bad_scene_mid_epoch_is_named_from_a_worker(scenes, tmp_path, kind):
    """No check before: a dataloader worker reaches the bad scene in the
    middle of the epoch, and the message names it."""
    bad = damaged_copy(scenes, tmp_path, kind)
    dataset = scenes_dataset(bad.parents[2])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, num_workers=1, collate_fn=lambda b: b)
    batches = iter(loader)
    for _ in range(BAD_SCENE // 2):
        next(batches)  # the scenes before it load
    with pytest.raises(DataFileError) as info:
        next(batches)
    message = str(info.value)
    assert 'in DataLoader worker process 0' in message
    assert f'{bad}: a {"PNG" if kind == "label" else "JPEG"} cut short' in (
        message)


def test_without_the_checked_transforms_the_scene_is_not_named(
        scenes, tmp_path):
    """The control: MMSeg's own pipeline fails without the file."""
    bad = damaged_copy(scenes, tmp_path, 'label')
    dataset = scenes_dataset(bad.parents[2], checked=False)
    with pytest.raises(Exception) as info:
        dataset[BAD_SCENE]
    assert str(bad) not in str(info.value)
    assert 'cut short' not in str(info.value)


def test_small_dataset_is_checked_whole_before_training(scenes, tmp_path):
    bad = damaged_copy(scenes, tmp_path, 'label')
    dataset = scenes_dataset(bad.parents[2])
    with pytest.raises(DataFileError) as info:
        check_samples(dataset, 'train_dataloader.dataset')
    message = str(info.value)
    assert message.startswith(
        f"train_dataloader.dataset.data_root='{bad.parents[2]}': sample "
        f'{BAD_SCENE} of BaseSegDataset (8 samples): {bad}: a PNG cut short')
    # A dataset too large to check whole gets its first samples checked.
    check_samples(dataset, 'train_dataloader.dataset', full_check_max=7)


def test_train_names_a_bad_validation_scene_before_training(
        scenes, tmp_path, monkeypatch):
    """tools/train.py on the tiny UperNet: the second validation scene is
    cut short; the run stops before its first iteration, naming it."""
    from mmengine.runner import IterBasedTrainLoop
    iterations = []
    monkeypatch.setattr(IterBasedTrainLoop, 'run_iter',
                        lambda self, *args: iterations.append(args))
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    import shutil
    root = tmp_path / 'scenes'
    shutil.copytree(scenes, root)
    bad = root / 'images/validation/ADE_val_00000002.jpg'
    bad.write_bytes(cut(bad.read_bytes()))
    with pytest.raises(DataFileError) as info:
        launch.train([
            str(SEG_TINY), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            *(f'{k}_dataloader.dataset.data_root={root}'
              for k in ('train', 'val', 'test'))
        ])
    message = str(info.value)
    assert message.startswith(
        f"val_dataloader.dataset.data_root='{root}': sample 1 of "
        f'ADE20KDataset (2 samples): {bad}: a JPEG cut short')
    assert not iterations


# --------------------------------------------------------------- configs
PROJECT_CONFIGS = [
    'configs/moma/moma_vit-b_moco-mae_100e.py',
    'configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_ade20k-512x512.py',
    'configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_fmnist-scenes-512x512.py',
    'configs/study/upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64'
    '.py',
    'configs/moma/benchmarks/vit-base-p16_moma-pre_8xb128-coslr-100e_in1k.py',
]


@pytest.mark.parametrize('config', PROJECT_CONFIGS)
def test_project_configs_get_checked_loading(config):
    """Every loading step of the pipelines becomes a checked one, which
    the config's registry builds."""
    from mmengine.registry import TRANSFORMS
    from mmmoma.datasets.checks import _datasets
    cfg = Config.fromfile(str(ROOT / config))
    replaced = use_checked_loading(cfg)
    assert replaced
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        for _, dataset in _datasets(loader.get('dataset'), key):
            for step in dataset.get('pipeline') or []:
                with TRANSFORMS.switch_scope_and_registry(
                        cfg.default_scope) as registry:
                    cls = registry.get(step['type'])
                    assert not cls.__name__.startswith('Load'), (config,
                                                                 step)
                    if cls.__name__.startswith('Checked'):
                        assert isinstance(registry.build(step), cls)


def test_other_codebases_transforms_are_left_alone():
    cfg = Config(dict(
        default_scope='mmpretrain',
        train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='mmcv.LoadAnnotations'),
            dict(type='LoadImageFromFile'),
            dict(type='mmseg.LoadAnnotations'),
        ]))))
    assert use_checked_loading(cfg) == [
        'train_dataloader.dataset.pipeline.1',
        'train_dataloader.dataset.pipeline.2'
    ]
    assert [s['type'] for s in cfg.train_dataloader.dataset.pipeline] == [
        'mmcv.LoadAnnotations', 'CheckedLoadImageFromFile',
        'mmseg.CheckedLoadAnnotations'
    ]


def test_png_walk_checks_every_chunk():
    """The diagnosis of the PNG's chunks, by hand: a valid file is whole."""
    from mmmoma.datasets.checked_loading import describe_image_bytes
    data = b'\x89PNG\r\n\x1a\n'
    for kind, body in ((b'IHDR', bytes(13)), (b'IEND', b'')):
        data += (len(body).to_bytes(4, 'big') + kind + body +
                 zlib.crc32(kind + body).to_bytes(4, 'big'))
    assert 'whole and with valid checksums' in describe_image_bytes(data)
    assert 'no IEND chunk' in describe_image_bytes(data[:-12])
