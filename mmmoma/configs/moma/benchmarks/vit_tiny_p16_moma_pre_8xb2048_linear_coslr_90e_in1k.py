# Linear probe of a MOMA ViT-T student: the ViT-B recipe with the width
# changed. Pure-Python form of configs/moma/benchmarks/
# vit-tiny-p16_moma-pre_8xb2048-linear-coslr-90e_in1k.py.
from mmengine.config import read_base

with read_base():
    from .vit_base_p16_moma_pre_8xb2048_linear_coslr_90e_in1k import *

model.backbone.arch = 'deit-t'
model.neck.input_features = 192
model.head.in_channels = 192
