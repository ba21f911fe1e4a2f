# MOMA with a DINOv2 ViT-B/14 teacher beside MAE (the paper's teachers are
# MoCo v3 and MAE). Pure-Python form of
# configs/moma/moma_vit-b_dinov2-mae_100e.py, which explains the grid.
from mmengine.config import read_base
from mmpretrain.models import VisionTransformer

with read_base():
    from .moma_vit_b_moco_mae_100e import *

# MMPretrain's conversion of the official DINOv2 ViT-B/14 (backbone only).
dinov2_vit_b_ckpt = 'https://download.openmmlab.com/mmpretrain/v1.0/dinov2/vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth'  # noqa: E501

# 14-px patches: 16 x 16 tokens at 224 px, resampled to the student's
# 14 x 14 grid (teacher_resample); the class token is kept.
model.teachers = dict(
    dinov2=dict(
        type=VisionTransformer,
        arch='base',
        img_size=224,
        patch_size=14,
        layer_scale_init_value=1e-5,
        out_type='raw',
        out_indices=-1,
        init_cfg=dict(
            type='Pretrained', checkpoint=dinov2_vit_b_ckpt,
            prefix='backbone.')),
    mae=mae_teacher)
model.update(teacher_resample='bilinear')
