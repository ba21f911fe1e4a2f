# MOMA student with MoCo v3's own ViT-S shape (384-d, 12 blocks, 12 heads),
# which is not MMPretrain's arch='s'; teachers stay ViT-B. Pure-Python form
# of configs/moma/moma_vit-s-mocov3_moco-mae_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.backbone.arch = dict(
    embed_dims=384, num_layers=12, num_heads=12, feedforward_channels=1536)
