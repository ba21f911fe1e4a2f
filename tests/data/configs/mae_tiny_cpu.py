# A tiny MMPretrain MAE for testing the tools on CPU: 32x32 images, patch 8,
# a 2-layer 32-d ViT, batch 4, plain OptimWrapper, 2 epochs over an image
# folder. Point it at images with
#   --cfg-options train_dataloader.dataset.data_root=DIR
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            feedforward_channels=64),
        img_size=32,
        patch_size=8),
    neck=dict(
        num_patches=16,  # (32 / 8) ** 2
        patch_size=8,
        embed_dim=32,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2),
    head=dict(patch_size=8))

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    # Reset: a base's collate_fn carries `_scope_`, which the Runner rejects.
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny_images',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='RandomResizedCrop',
                scale=32,
                crop_ratio_range=(0.5, 1.0),
                backend='pillow',
                interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'),
        ]))

# AmpOptimWrapper refuses CPU.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95),
                   weight_decay=0.05))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=2,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))

auto_scale_lr = dict(base_batch_size=4)
# The MAE base resumes by default; here only --resume does.
resume = False
