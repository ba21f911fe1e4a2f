# MOMA student with MoCo v3's own ViT-S shape (384-d, 12 blocks, 12 heads),
# which is not MMPretrain's arch='s'; teachers stay ViT-B.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=384,
            num_layers=12,
            num_heads=12,
            feedforward_channels=1536)))
