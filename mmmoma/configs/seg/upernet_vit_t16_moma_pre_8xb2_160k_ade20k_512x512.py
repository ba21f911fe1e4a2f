# UperNet on ADE20K with a MOMA ViT-T student (DeiT-T shape); the heads keep
# the recipe's 768 channels. Pure-Python form of
# configs/seg/upernet_vit-t16_moma-pre_8xb2-160k_ade20k-512x512.py.
from mmengine.config import read_base

with read_base():
    from .upernet_vit_b16_moma_pre_8xb2_160k_ade20k_512x512 import *

model.backbone.arch = 'deit-t'
model.update(
    neck=dict(embed_dim=192),
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))
