# Linear probe of a MOMA ViT-B student on ImageNet-1k: MMPretrain's MAE
# recipe unchanged, with MomaViT (checked student loading) as the backbone.
# Pure-Python form of configs/moma/benchmarks/
# vit-base-p16_moma-pre_8xb2048-linear-coslr-90e_in1k.py (which explains
# it). The student comes from a MOMA checkpoint:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
from mmengine.config import read_base

from mmmoma.models import MomaViT

with read_base():
    from ..._base_.mmpretrain.mae.benchmarks.vit_base_p16_8xb2048_linear_coslr_90e_in1k import *  # noqa: E501

model.backbone.update(
    type=MomaViT,
    init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'))
