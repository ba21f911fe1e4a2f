# AdamW, 1 warm-up epoch, cosine decay; a plain OptimWrapper (MMEngine's
# AmpOptimWrapper refuses CPU; tools/train.py --amp switches on a GPU).
# tools/demo.py sets train_cfg.max_epochs per step, and the cosine's T_max
# and end with it.
optim_wrapper = dict(
    type='OptimWrapper',
    # choice: 1.5e-3 for 128 images (MAE: 1.5e-4 per 256), a high rate for
    # schedules of a few hundred steps.
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=4,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=5,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=5)
auto_scale_lr = dict(base_batch_size=128)
