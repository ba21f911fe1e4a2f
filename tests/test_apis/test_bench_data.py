"""mmmoma.apis.benchmark.data on generated JPEGs."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmmoma.apis.benchmark import data as data_benchmark

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs/moma/moma_vit-b_moco-mae_100e.py')


@pytest.fixture(scope='module')
def jpeg_folder(tmp_path_factory) -> Path:
    """Three ImageNet-sized JPEGs in nested folders, like a class tree."""
    root = tmp_path_factory.mktemp('jpegs')
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(375, 500), (333, 500), (500, 400)]):
        folder = root / f'n0000000{i}'
        folder.mkdir()
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'img_{i}.JPEG'), img)
    (root / 'meta.txt').write_text('not an image\n')
    return root


def test_times_each_transform_and_the_loader(tmp_path, jpeg_folder):
    out = tmp_path / 'data.json'
    result = data_benchmark.main([
        CONFIG, '--images', str(jpeg_folder), '--num', '4', '--workers', '0',
        '--batch-size', '2', '--batches', '1', '--repeats', '3', '--out',
        str(out)
    ])
    assert json.loads(out.read_text()) == result
    assert result['images']['files'] == 3
    assert list(result['ms_per_image']) == [
        '0:LoadImageFromFile', '1:FastRandomResizedCrop', '2:RandomFlip',
        '3:PackInputs'
    ]
    assert all(ms > 0 for ms in result['ms_per_image'].values())
    # Medians of 3 runs: of the whole pipeline, and of each transform.
    runs = result['images_per_s_one_thread_runs']
    assert len(runs) == 3
    assert result['images_per_s_one_thread'] == sorted(runs)[1]
    assert result['images_per_s_one_thread'] == pytest.approx(
        1e3 / sum(result['ms_per_image'].values()), rel=0.5)
    (loader, ) = result['loader']
    assert loader['workers'] == 0
    assert loader['images_per_s'] == sorted(loader['images_per_s_runs'])[1]
    assert loader['warm_batches'] == 1 and loader['timed_batches'] == 1


def test_pipelines_compare_through_cfg_options(jpeg_folder):
    result = data_benchmark.main([
        CONFIG, '--images', str(jpeg_folder), '--num', '2', '--cfg-options',
        'train_dataloader.dataset.pipeline.1.type=RandomResizedCrop',
        'train_dataloader.dataset.pipeline.1.backend=pillow'
    ])
    assert '1:RandomResizedCrop' in result['ms_per_image']
    assert 'backend=pillow' in result['pipeline'][1]
    assert result['loader'] == []


def test_the_dataset_gives_batches_of_the_crop_size(jpeg_folder):
    from mmengine.config import Config
    from mmengine.dataset import default_collate
    pipeline = data_benchmark.build_pipeline(Config.fromfile(CONFIG))
    files = data_benchmark.list_images(str(jpeg_folder))
    dataset = data_benchmark.FilePipeline(files, pipeline, 5)
    batch = default_collate([dataset[i] for i in range(5)])
    assert batch['inputs'].shape == (5, 3, 224, 224)
    assert [s.sample_idx for s in batch['data_samples']] == list(range(5))


def test_a_folder_without_images_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"--images='.*' holds no image"):
        data_benchmark.main([CONFIG, '--images', str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--images='/nonexistent' is not"):
        data_benchmark.main([CONFIG, '--images', '/nonexistent'])
