# Fine-tuning of a MOMA ViT-T student: the ViT-B recipe with the width
# changed. Pure-Python form of configs/moma/benchmarks/
# vit-tiny-p16_moma-pre_8xb128-coslr-100e_in1k.py.
from mmengine.config import read_base

with read_base():
    from .vit_base_p16_moma_pre_8xb128_coslr_100e_in1k import *

model.backbone.arch = 'deit-t'
model.head.in_channels = 192
