# Segmentation transfer of tools/study.py: UperNet on the composed Fashion-
# MNIST scenes (tools/dataset_converters/make_fmnist_scenes.py, ADE20K
# layout, 64x64, 10 classes) with a study model (128-d, 4 blocks, 4x4
# patches) as backbone. The ViT-B scenes recipe of configs/seg/ with the
# sizes of the scenes and of the backbone. The backbone and data root come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
_base_ = '../seg/upernet_vit-b16_moma-pre_8xb2-160k_fmnist-scenes-512x512.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

crop_size = (64, 64)
# choice: one process, so BN (SyncBN needs a process group).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512),
        img_size=crop_size,  # pos_embed resized from the 28px 7x7 grid
        patch_size=4,
        out_indices=[0, 1, 2, 3],  # 4 blocks (recipe: 3, 5, 7, 11 of 12)
        drop_path_rate=0.0),  # choice: a 4-block model, short schedule
    neck=dict(embed_dim=128, norm_cfg=norm_cfg),
    # choice: 64 / 32 channels (recipe: 768 / 256) for a 128-d backbone
    decode_head=dict(
        in_channels=[128] * 4, channels=64, num_classes=10,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=32, num_classes=10, norm_cfg=norm_cfg),
    test_cfg=dict(_delete_=True, mode='whole'))  # a scene is one crop

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
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root='data/fmnist_scenes', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root='data/fmnist_scenes', pipeline=test_pipeline))
test_dataloader = val_dataloader

# choice: 5e-4 (recipe: 1e-4 for 16 images) for a 2k-iteration schedule;
# 100 warm-up iterations (recipe: 1500 of 160k).
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
        end=100),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=100,
        end=2000,
        by_epoch=False)
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=2000, max_keep_ckpts=1))
randomness = dict(seed=0)
