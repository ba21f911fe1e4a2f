# A small MAE teacher on Fashion-MNIST with MMPretrain's own MAE algorithm:
# step 1 of tools/demo.py. 28x28 images, 4x4 patches (7x7 = 49 tokens), a
# 128-d 4-block ViT, a 64-d 2-block pixel decoder, 75% masking.
#   python tools/train.py configs/demo/mae_vit-tiny-p4_1xb128-coslr_fmnist.py
_base_ = [
    'mmpretrain::_base_/models/mae_vit-base-p16.py',
    './_base_/datasets/fmnist_bs128_mae.py',
    './_base_/schedules/fmnist_adamw_coslr.py',
    './_base_/fmnist_runtime.py',
]
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

# choice: sized for a 2-core CPU (MAE: ViT-B, 224 px, 16 px patches).
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512),
        img_size=28,
        patch_size=4),
    neck=dict(
        num_patches=49,
        patch_size=4,
        embed_dim=128,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4),
    head=dict(patch_size=4))
