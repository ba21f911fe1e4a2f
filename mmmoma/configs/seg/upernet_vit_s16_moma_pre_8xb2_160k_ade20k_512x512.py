# UperNet on ADE20K with a MOMA ViT-S student (DeiT-S shape); the heads keep
# the recipe's 768 channels. Pure-Python form of
# configs/seg/upernet_vit-s16_moma-pre_8xb2-160k_ade20k-512x512.py.
from mmengine.config import read_base

with read_base():
    from .upernet_vit_b16_moma_pre_8xb2_160k_ade20k_512x512 import *

model.backbone.arch = 'deit-s'
model.update(
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
