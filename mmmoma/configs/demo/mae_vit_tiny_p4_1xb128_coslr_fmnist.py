# A small MAE teacher on Fashion-MNIST with MMPretrain's own MAE algorithm:
# step 1 of tools/demo.py. 28x28 images, 4x4 patches (49 tokens), a 128-d
# 4-block ViT, a 64-d 2-block pixel decoder, 75% masking. Pure-Python form
# of configs/demo/mae_vit-tiny-p4_1xb128-coslr_fmnist.py.
from mmengine.config import read_base

with read_base():
    from .._base_.mmpretrain.models.mae_vit_base_p16 import *
    from ._base_.datasets.fmnist_bs128_mae import *
    from ._base_.schedules.fmnist_adamw_coslr import *
    from ._base_.fmnist_runtime import *

# choice: sized for a 2-core CPU (MAE: ViT-B, 224 px, 16 px patches)
model.backbone.update(
    arch=dict(
        embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512),
    img_size=28,
    patch_size=4)
model.neck.update(
    num_patches=49,
    patch_size=4,
    embed_dim=128,
    decoder_embed_dim=64,
    decoder_depth=2,
    decoder_num_heads=4)
model.head.update(patch_size=4)
