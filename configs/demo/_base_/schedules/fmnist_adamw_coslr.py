# The project's AdamW recipe and no-decay keys (inherited), shortened for
# Fashion-MNIST on a CPU: a plain OptimWrapper (MMEngine's AmpOptimWrapper
# refuses CPU; tools/train.py --amp switches on a GPU), 1 warm-up epoch, then
# cosine. tools/demo.py sets train_cfg.max_epochs per step, and the cosine's
# T_max and end with it.
_base_ = '../../../_base_/schedules/moma_adamw_coslr_100e.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # choice: 1.5e-3 for 128 images (MAE: 1.5e-4 per 256), a high rate for
    # schedules of a few hundred steps.
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
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
train_cfg = dict(max_epochs=5)
auto_scale_lr = dict(base_batch_size=128)
