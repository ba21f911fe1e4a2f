# A tiny MOMA run for CPU tests: the real 100e config with a 32px, 2-block
# student and teachers, generated images and a plain optimiser. The teacher
# checkpoints are given at launch:
#   --cfg-options model.teachers.mae.init_cfg.checkpoint=...
#                 model.teachers.mocov3.init_cfg.checkpoint=...
#                 train_dataloader.dataset.data_root=...
_base_ = '../../../configs/moma/moma_vit-b_moco-mae_100e.py'

tiny = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
model = dict(
    backbone=dict(arch=dict(_delete_=True, **tiny), img_size=32, patch_size=8),
    mask_ratio=0.75,
    teachers=dict(
        mocov3=dict(
            arch=dict(_delete_=True, **tiny),
            img_size=32,
            patch_size=8,
            init_cfg=dict(checkpoint='MOCOV3_TEACHER')),
        mae=dict(
            arch=dict(_delete_=True, **tiny),
            img_size=32,
            patch_size=8,
            init_cfg=dict(checkpoint='MAE_TEACHER'))),
    neck=dict(decoder_embed_dims=32, decoder_depth=1, decoder_num_heads=2))

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='DATA_ROOT',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            # the real config's transform, so that runs exercise it
            dict(
                type='FastRandomResizedCrop',
                scale=32,
                crop_ratio_range=(0.5, 1.0)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0, diff_rank_seed=False)
resume = False
