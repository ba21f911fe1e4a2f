# The project's AdamW recipe and no-decay keys, shortened for Fashion-MNIST
# on a CPU: a plain OptimWrapper (AmpOptimWrapper refuses CPU), 1 warm-up
# epoch, then cosine. Pure-Python form of
# configs/demo/_base_/schedules/fmnist_adamw_coslr.py.
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from torch.optim import AdamW

with read_base():
    from ...._base_.schedules.moma_adamw_coslr_100e import *

optim_wrapper = dict(
    type=OptimWrapper,
    # choice: 1.5e-3 for 128 images, a high rate for a few hundred steps
    optimizer=dict(type=AdamW, lr=1.5e-3, betas=(0.9, 0.95),
                   weight_decay=0.05),
    paramwise_cfg=optim_wrapper.paramwise_cfg)
param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type=CosineAnnealingLR,
        T_max=4,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=5,
        convert_to_iter_based=True)
]
train_cfg.update(max_epochs=5)
auto_scale_lr.update(base_batch_size=128)
