# MOMA, MAE ViT-B teacher -> ViT-B student initialised from MoCo v3.
# Pure-Python form of configs/moma/moma_vit-b_mae-to-moco_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.backbone.update(
    init_cfg=dict(
        type='Pretrained', checkpoint=mocov3_vit_b_ckpt, prefix='backbone.'))
model.teachers = dict(mae=mae_teacher)
