# MMPretrain 1.2's MAE ViT-B/16 linear probe on ImageNet-1k
# (mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py)
# in the pure-Python format: a frozen backbone, the class token after the
# final norm, a BatchNorm neck without affine, LARS 6.4 with mixed
# precision, 90 epochs, 8 GPUs x 2048 images.
from mmengine.config import read_base
from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.optim import AmpOptimWrapper, CosineAnnealingLR, LinearLR
from mmpretrain.engine.optimizers import LARS
from mmpretrain.models import (ClsBatchNormNeck, CrossEntropyLoss,
                               ImageClassifier, VisionTransformer,
                               VisionTransformerClsHead)

with read_base():
    from ...datasets.imagenet_bs32_pil_resize import *
    from ...default_runtime import *
    from ...schedules.imagenet_bs1024_adamw_swin import *

train_dataloader.update(batch_size=2048, drop_last=True)
val_dataloader.update(drop_last=False)
test_dataloader.update(drop_last=False)

model = dict(
    type=ImageClassifier,
    backbone=dict(
        type=VisionTransformer,
        arch='base',
        img_size=224,
        patch_size=16,
        frozen_stages=12,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(type=ClsBatchNormNeck, input_features=768),
    head=dict(
        type=VisionTransformerClsHead,
        num_classes=1000,
        in_channels=768,
        loss=dict(type=CrossEntropyLoss),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

# Replaces the schedule base's AdamW wrapper whole (the recipe's _delete_).
optim_wrapper = dict(
    type=AmpOptimWrapper,
    optimizer=dict(type=LARS, lr=6.4, weight_decay=0.0, momentum=0.9))

# 10 warm-up epochs, cosine to 0 at epoch 90
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
        T_max=80,
        by_epoch=True,
        begin=10,
        end=90,
        eta_min=0.0,
        convert_to_iter_based=True)
]

train_cfg.update(by_epoch=True, max_epochs=90)
default_hooks.update(
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=3),
    logger=dict(type=LoggerHook, interval=10))
randomness.update(seed=0, diff_rank_seed=True)
