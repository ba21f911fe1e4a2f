# A small MoCo v3 teacher on Fashion-MNIST with MMPretrain's own MoCoV3
# algorithm: step 2 of tools/demo.py. MMPretrain's MoCo v3 ViT-S model,
# shrunk: 28x28 images, 4x4 patches, a 128-d 4-block MoCoV3ViT, 512-d
# projector and predictor, BN1d instead of SyncBN. Pure-Python form of
# configs/demo/mocov3_vit-tiny-p4_1xb128-coslr_fmnist.py.
from mmengine.config import read_base
from mmpretrain.models import (CrossEntropyLoss, MoCoV3, MoCoV3Head,
                               MoCoV3ViT, NonLinearNeck)

with read_base():
    from ._base_.datasets.fmnist_bs128_mocov3 import *
    from ._base_.schedules.fmnist_adamw_coslr import *
    from ._base_.fmnist_runtime import *

temperature = 0.2
model = dict(
    type=MoCoV3,
    # choice: the momentum encoder takes 10% of the online one per step
    # (MoCo v3: 1%), for a few hundred steps
    base_momentum=0.1,
    backbone=dict(
        type=MoCoV3ViT,
        arch=dict(
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512),
        img_size=28,
        patch_size=4,
        stop_grad_conv1=True),
    neck=dict(
        type=NonLinearNeck,
        in_channels=128,
        hid_channels=512,  # MoCo v3: 4096
        out_channels=128,  # MoCo v3: 256
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        type=MoCoV3Head,
        predictor=dict(
            type=NonLinearNeck,
            in_channels=128,
            hid_channels=512,
            out_channels=128,
            num_layers=2,
            with_bias=False,
            with_last_bn=True,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False,
            norm_cfg=dict(type='BN1d')),
        loss=dict(type=CrossEntropyLoss, loss_weight=2 * temperature),
        temperature=temperature))

# MoCo v3's weight decay; no decay exclusions, as in MMPretrain's config.
optim_wrapper.optimizer.update(weight_decay=0.1)
optim_wrapper.paramwise_cfg = dict()
find_unused_parameters = True
