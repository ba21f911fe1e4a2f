# MOMA, MoCo v3 + MAE ViT-B teachers -> random ViT-T student (DeiT-T shape).
# Pure-Python form of configs/moma/moma_vit-t_moco-mae_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.backbone.arch = 'deit-t'
