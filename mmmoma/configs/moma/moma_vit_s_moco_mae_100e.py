# MOMA, MoCo v3 + MAE ViT-B teachers -> random ViT-S student (DeiT-S shape).
# Pure-Python form of configs/moma/moma_vit-s_moco-mae_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.backbone.arch = 'deit-s'
