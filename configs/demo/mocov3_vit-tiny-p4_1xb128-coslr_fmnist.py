# A small MoCo v3 teacher on Fashion-MNIST with MMPretrain's own MoCoV3
# algorithm: step 2 of tools/demo.py. The model of MMPretrain's
# mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py, shrunk:
# 28x28 images, 4x4 patches, a 128-d 4-block MoCoV3ViT, 512-d projector and
# predictor, BN1d instead of SyncBN (SyncBN has no CPU kernel).
#   python tools/train.py \
#       configs/demo/mocov3_vit-tiny-p4_1xb128-coslr_fmnist.py
_base_ = [
    './_base_/datasets/fmnist_bs128_mocov3.py',
    './_base_/schedules/fmnist_adamw_coslr.py',
    './_base_/fmnist_runtime.py',
]
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

temperature = 0.2
model = dict(
    type='MoCoV3',
    # choice: the momentum encoder takes 10% of the online one per step
    # (MoCo v3: 1%); with a few hundred steps, 1% leaves it near its
    # random start.
    base_momentum=0.1,
    backbone=dict(
        type='MoCoV3ViT',
        arch=dict(
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512),
        img_size=28,
        patch_size=4,
        stop_grad_conv1=True),
    neck=dict(
        type='NonLinearNeck',
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
        type='MoCoV3Head',
        predictor=dict(
            type='NonLinearNeck',
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
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature))

# MoCo v3's weight decay; no decay exclusions, as in MMPretrain's config.
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.1), paramwise_cfg=dict(_delete_=True))
find_unused_parameters = True
