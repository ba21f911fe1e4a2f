# Segmentation v2 of tools/study.py, fine-tune: the linear probe's BN + 1x1
# head trained with the whole study model, end to end with layer decay 0.9,
# 1,000 iterations of 16. Pure-Python form of configs/study/linear-ft_vit-
# tiny-p4_moma-pre_1xb16-1k_fmnist-mosaics-84x84.py, which explains each
# choice. The backbone and data root come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
from mmengine.config import read_base
from mmengine.optim import LinearLR, OptimWrapper, PolyLR
from torch.optim import AdamW

from mmmoma.engine import LayerDecayOptimWrapperConstructor

with read_base():
    from .linear_vit_tiny_p4_moma_pre_1xb16_300i_fmnist_mosaics_84x84 import *  # noqa: E501

model.backbone.update(frozen_stages=-1)

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(
        type=AdamW, lr=5e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    constructor=LayerDecayOptimWrapperConstructor,
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(
        type=LinearLR, start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type=PolyLR,
        eta_min=0.0,
        power=1.0,
        begin=100,
        end=1000,
        by_epoch=False)
]
train_cfg.update(max_iters=1000, val_interval=1000)
default_hooks.logger.update(interval=50)
default_hooks.checkpoint.update(interval=1000)
