"""The scene segmentation config names the scenes' garments (not ADE20K's
classes) and reads the same files, labels shifted as ADE20K's are."""
import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.datasets.fmnist_scenes import CLASSES

CONFIG = ('configs/study/'
          'upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64.py')


def write_scenes(root, num=2):
    for i in range(num):
        name = f'ADE_train_{i:08d}'
        img = root / 'images' / 'training' / f'{name}.jpg'
        ann = root / 'annotations' / 'training' / f'{name}.png'
        img.parent.mkdir(parents=True, exist_ok=True)
        ann.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(img)
        label = np.zeros((8, 8), np.uint8)
        label[:4] = i + 1  # garment class i, label i + 1
        Image.fromarray(label).save(ann)


def test_scenes_dataset_has_garment_names(tmp_path):
    from mmseg.registry import DATASETS
    write_scenes(tmp_path)
    cfg = Config.fromfile(CONFIG)
    with DefaultScope.overwrite_default_scope('mmseg'):
        scenes = DATASETS.build(
            dict(cfg.train_dataloader.dataset, data_root=str(tmp_path),
                 pipeline=[dict(type='LoadAnnotations',
                                reduce_zero_label=True)]))
        ade = DATASETS.build(
            dict(type='ADE20KDataset', data_root=str(tmp_path),
                 data_prefix=cfg.train_dataloader.dataset.data_prefix))
    assert tuple(scenes.metainfo['classes']) == CLASSES
    assert len(scenes.metainfo['palette']) == len(CLASSES)
    assert [d['seg_map_path'] for d in scenes] == [
        d['seg_map_path'] for d in ade.load_data_list()]
    labels = scenes[1]['gt_seg_map']
    assert set(np.unique(labels)) == {1, 255}  # class 1 'Trouser', 0 ignored
