# A tiny UperNet for CPU tests: the ViT-B MOMA segmentation config with a
# 4-block 32-d student (patch 8) on 64x64 crops, small heads, 10 classes and
# 6 iterations. The data root (ADE20K layout) and the student are given at
# launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=MOMA_CKPT
#                 train_dataloader.dataset.data_root=DIR
#                 val_dataloader.dataset.data_root=DIR
#                 test_dataloader.dataset.data_root=DIR
_base_ = '../../../configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_ade20k-512x512.py'  # noqa: E501

crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=32,
            num_layers=4,
            num_heads=2,
            feedforward_channels=64),
        img_size=crop_size,
        patch_size=8,
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.0),
    neck=dict(embed_dim=32),
    decode_head=dict(in_channels=[32] * 4, channels=32, num_classes=10),
    auxiliary_head=dict(in_channels=32, channels=16, num_classes=10),
    test_cfg=dict(crop_size=crop_size, stride=(43, 43)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(256, 64),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=2, end=6)
]
train_cfg = dict(max_iters=6, val_interval=6)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=6))
randomness = dict(seed=0)
