# Segmentation v2 of tools/study.py: UperNet fine-tuned end to end on the
# Fashion-MNIST mosaics (84x84, 11 classes, background one of them) with a
# study model (128-d, 4 blocks, 4x4 patches) as backbone. Pure-Python form
# of configs/study/upernet_vit-tiny-p4_moma-pre_1xb16-300i_fmnist-mosaics-
# 84x84.py, which explains each choice. The backbone and data root come at
# launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
from mmcv.transforms import LoadImageFromFile
from mmengine.config import read_base
from mmengine.optim import LinearLR, PolyLR
from mmseg.datasets.transforms import (LoadAnnotations, PackSegInputs,
                                       RandomFlip)

from mmmoma.datasets import FashionMNISTMosaics

with read_base():
    from .upernet_vit_tiny_p4_moma_pre_1xb8_2k_fmnist_scenes_64x64 import *  # noqa: E501

crop_size = (84, 84)
# the pretraining's Fashion-MNIST gray mean / std, not ImageNet's
model.data_preprocessor.update(
    size=crop_size,
    mean=[72.94, 72.94, 72.94],
    std=[90.02, 90.02, 90.02],
    bgr_to_rgb=False)
model.backbone.update(img_size=crop_size)  # pos_embed resized to 21x21
model.neck.update(rescales=[2, 1, 0.5, 0.25])  # strides 2, 4, 8, 16
model.decode_head.update(channels=32, num_classes=11)
model.auxiliary_head.update(num_classes=11)

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=LoadAnnotations),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackSegInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=LoadAnnotations),
    dict(type=PackSegInputs)
]
train_dataloader.update(batch_size=16)
train_dataloader.dataset = dict(
    type=FashionMNISTMosaics,
    data_root='data/fmnist_mosaics',
    data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    pipeline=train_pipeline)
val_dataloader.update(batch_size=16)
val_dataloader.dataset = dict(
    type=FashionMNISTMosaics,
    data_root='data/fmnist_mosaics',
    data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
    pipeline=test_pipeline)
test_dataloader = val_dataloader

optim_wrapper.optimizer.update(lr=1e-3)
optim_wrapper.paramwise_cfg.update(layer_decay_rate=0.9)
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(
        type=PolyLR,
        eta_min=0.0,
        power=1.0,
        begin=30,
        end=300,
        by_epoch=False)
]
train_cfg.update(max_iters=300, val_interval=300)
default_hooks.logger.update(interval=25)
default_hooks.checkpoint.update(interval=300)
