# AdamW + warm-up + cosine, MAE's optimiser recipe scaled to 100 epochs.
# Pure-Python form of configs/_base_/schedules/moma_adamw_coslr_100e.py.
from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR
from mmengine.runner import EpochBasedTrainLoop
from torch.optim import AdamW

optim_wrapper = dict(
    type=AmpOptimWrapper,
    loss_scale='dynamic',
    optimizer=dict(
        type=AdamW,
        lr=1.5e-4 * 2048 / 256,  # MAE's base lr 1.5e-4 per 256 images
        betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

# choice: 10 warm-up epochs (MAE: 40 of 1600), cosine to the end.
param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type=CosineAnnealingLR,
        T_max=90,
        eta_min=0.0,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True)
]

train_cfg = dict(type=EpochBasedTrainLoop, max_epochs=100)
auto_scale_lr = dict(base_batch_size=2048)
