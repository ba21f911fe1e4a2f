# A tiny linear probe for CPU tests: the ViT-B MOMA linear-probe config with a
# frozen 4-block 32-d student (patch 8) at 32px, 10 classes, a plain
# optimizer wrapper and 2 epochs. The data root (ImageNet layout with
# meta/{train,val}.txt) and the student are given at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=MOMA_CKPT
#                 train_dataloader.dataset.data_root=DIR
#                 val_dataloader.dataset.data_root=DIR
_base_ = '../../../configs/moma/benchmarks/vit-base-p16_moma-pre_8xb2048-linear-coslr-90e_in1k.py'  # noqa: E501

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=32,
            num_layers=4,
            num_heads=2,
            feedforward_channels=64),
        img_size=32,
        patch_size=8,
        frozen_stages=4),
    neck=dict(input_features=32),
    head=dict(in_channels=32, num_classes=10))
data_preprocessor = dict(num_classes=10)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AmpOptimWrapper refuses CPU.
optim_wrapper = dict(type='OptimWrapper')
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)
