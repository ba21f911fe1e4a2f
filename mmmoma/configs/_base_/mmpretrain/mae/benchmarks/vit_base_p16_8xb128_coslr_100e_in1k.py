# MMPretrain 1.2's MAE ViT-B/16 fine-tuning on ImageNet-1k
# (mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py) in the
# pure-Python format: 100 epochs, 8 GPUs x 128 images, AdamW 2e-3 with
# layer-wise lr decay 0.65, drop path 0.1, label smoothing 0.1,
# Mixup/CutMix, average-pooled tokens without a final norm.
from mmengine.config import read_base
from mmengine.hooks import CheckpointHook
from mmengine.optim import CosineAnnealingLR, LinearLR
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from mmpretrain.models import (CutMix, ImageClassifier, LabelSmoothLoss,
                               LinearClsHead, Mixup, VisionTransformer)
from torch.optim import AdamW

with read_base():
    from ...datasets.imagenet_bs64_swin_224 import *
    from ...default_runtime import *
    from ...schedules.imagenet_bs1024_adamw_swin import *

# The recipe restates the data base's pipelines with the same values
# (RandAugment, random erasing); only the batch sizes change.
train_dataloader.update(batch_size=128)
val_dataloader.update(batch_size=128)
test_dataloader = val_dataloader

model = dict(
    type=ImageClassifier,
    backbone=dict(
        type=VisionTransformer,
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type=LinearClsHead,
        num_classes=1000,
        in_channels=768,
        loss=dict(
            type=LabelSmoothLoss, label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(
        augments=[dict(type=Mixup, alpha=0.8),
                  dict(type=CutMix, alpha=1.0)]))

# Merged into the schedule base's AdamW and paramwise_cfg (its eps and
# norm/bias/flat decay multipliers stay).
optim_wrapper.update(
    optimizer=dict(
        type=AdamW, lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor=LearningRateDecayOptimWrapperConstructor,
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))

# 5 warm-up epochs, cosine to 1e-6 at epoch 100
param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type=CosineAnnealingLR,
        T_max=95,
        by_epoch=True,
        begin=5,
        end=100,
        eta_min=1e-6,
        convert_to_iter_based=True)
]

default_hooks.update(
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=3))
train_cfg.update(by_epoch=True, max_epochs=100)
randomness.update(seed=0, diff_rank_seed=True)
