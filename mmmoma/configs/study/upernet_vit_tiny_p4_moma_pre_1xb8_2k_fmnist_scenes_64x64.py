# Segmentation transfer of tools/study.py: UperNet on the composed
# Fashion-MNIST scenes (64x64, 10 classes) with a study model (128-d,
# 4 blocks, 4x4 patches) as backbone. Pure-Python form of
# configs/study/upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64.py.
# The backbone and data root come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
from mmcv.transforms import LoadImageFromFile, RandomResize
from mmengine.config import read_base
from mmengine.optim import LinearLR, PolyLR
from mmseg.datasets.transforms import (LoadAnnotations, PackSegInputs,
                                       PhotoMetricDistortion, RandomCrop,
                                       RandomFlip, Resize)

with read_base():
    from ..seg.upernet_vit_b16_moma_pre_8xb2_160k_fmnist_scenes_512x512 import *  # noqa: E501

crop_size = (64, 64)
# choice: one process, so BN (SyncBN needs a process group)
norm_cfg = dict(type='BN', requires_grad=True)
model.data_preprocessor.update(size=crop_size)
model.backbone.update(
    arch=dict(
        embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512),
    img_size=crop_size,  # pos_embed resized from the 28 px 7x7 grid
    patch_size=4,
    out_indices=[0, 1, 2, 3],  # 4 blocks (recipe: 3, 5, 7, 11 of 12)
    drop_path_rate=0.0)  # choice: a 4-block model, short schedule
model.neck.update(embed_dim=128, norm_cfg=norm_cfg)
# choice: 64 / 32 channels (recipe: 768 / 256) for a 128-d backbone
model.decode_head.update(
    in_channels=[128] * 4, channels=64, num_classes=10, norm_cfg=norm_cfg)
model.auxiliary_head.update(
    in_channels=128, channels=32, num_classes=10, norm_cfg=norm_cfg)
model.test_cfg = dict(mode='whole')  # a scene is one crop

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=LoadAnnotations, reduce_zero_label=True),
    dict(
        type=RandomResize,
        scale=(256, 64),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type=RandomCrop, crop_size=crop_size, cat_max_ratio=0.75),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PhotoMetricDistortion),
    dict(type=PackSegInputs)
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(256, 64), keep_ratio=True),
    dict(type=LoadAnnotations, reduce_zero_label=True),
    dict(type=PackSegInputs)
]
train_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
train_dataloader.dataset.update(
    data_root='data/fmnist_scenes', pipeline=train_pipeline)
val_dataloader.update(batch_size=8, num_workers=0, persistent_workers=False)
val_dataloader.dataset.update(
    data_root='data/fmnist_scenes', pipeline=test_pipeline)
test_dataloader = val_dataloader

# choice: 5e-4 (recipe: 1e-4 for 16 images) for a 2k-iteration schedule;
# 100 warm-up iterations (recipe: 1500 of 160k).
optim_wrapper.optimizer.update(lr=5e-4)
param_scheduler = [
    dict(
        type=LinearLR, start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type=PolyLR,
        eta_min=0.0,
        power=1.0,
        begin=100,
        end=2000,
        by_epoch=False)
]
train_cfg.update(max_iters=2000, val_interval=2000)
default_hooks.logger.update(interval=50)
default_hooks.checkpoint.update(
    by_epoch=False, interval=2000, max_keep_ckpts=1)
randomness = dict(seed=0)
