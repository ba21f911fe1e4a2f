# MOMA, MoCo v3 + MAE ViT-B teachers -> randomly initialised ViT-B student,
# ImageNet-1k, 100 epochs, 8 GPUs x 256 images. Pure-Python form of
# configs/moma/moma_vit-b_moco-mae_100e.py (same settings).
from mmcv.transforms import LoadImageFromFile, RandomFlip
from mmengine.config import read_base
from mmpretrain.datasets import PackInputs

from mmmoma.datasets import FastRandomResizedCrop
from mmmoma.engine import epoch_worker_init_fn

with read_base():
    from .._base_.models.moma_vit_b import *
    from .._base_.mmpretrain.datasets.imagenet_bs512_mae import *
    from .._base_.schedules.moma_adamw_coslr_100e import *
    from .._base_.moma_runtime import *

# MAE's pipeline with torch's antialiased uint8 resize in place of PIL's
# bicubic (equal to within rounding, ~7x faster per image).
train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(
        type=FastRandomResizedCrop,
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        interpolation='bicubic'),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackInputs)
]

train_dataloader.update(
    batch_size=256,
    # choice: workers restarted and seeded from (seed, epoch) every epoch,
    # so that a resumed run repeats the lost epoch exactly
    persistent_workers=False,
    worker_init_fn=dict(type=epoch_worker_init_fn))
train_dataloader.dataset.pipeline = train_pipeline
