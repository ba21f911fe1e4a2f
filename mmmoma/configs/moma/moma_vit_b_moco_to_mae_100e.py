# MOMA, MoCo v3 ViT-B teacher -> ViT-B student initialised from MAE.
# Pure-Python form of configs/moma/moma_vit-b_moco-to-mae_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.backbone.update(
    init_cfg=dict(
        type='Pretrained', checkpoint=mae_vit_b_ckpt, prefix='backbone.'))
model.teachers = dict(mocov3=mocov3_teacher)
