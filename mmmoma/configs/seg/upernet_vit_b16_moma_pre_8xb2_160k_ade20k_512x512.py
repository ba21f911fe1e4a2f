# UperNet on ADE20K (512x512 crops, 160k iterations, 8 GPUs x 2 images) with
# a MOMA ViT-B student as backbone: MMSegmentation's MAE recipe with the
# student in place of MMSeg's MAE. Pure-Python form of
# configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_ade20k-512x512.py, which
# explains each departure. The student comes from a MOMA checkpoint:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
from mmengine.config import read_base

from mmmoma.engine import LayerDecayOptimWrapperConstructor
from mmmoma.models import MomaViT

with read_base():
    from .._base_.mmseg.mae_base_upernet_8xb2_amp_160k_ade20k_512x512 import *

model.update(
    pretrained=None,  # the recipe's local MAE file; see backbone.init_cfg
    # Feature2Pyramid's default, written out so that a CPU launch can swap
    # SyncBN for BN.
    neck=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))
model.backbone = dict(
    type=MomaViT,
    arch='b',
    img_size=(512, 512),  # pos_embed resized from the 224 px student
    patch_size=16,
    out_indices=[3, 5, 7, 11],
    out_type='featmap',
    final_norm=False,
    drop_path_rate=0.1,
    # no layer scale: the MOMA student has none
    init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'))

# The recipe's layer decay (lr * 0.65 ** (13 - depth)) for this backbone,
# and no weight decay on norms, biases, pos_embed and cls_token.
optim_wrapper.constructor = LayerDecayOptimWrapperConstructor
optim_wrapper.paramwise_cfg = dict(
    layer_decay_rate=0.65,
    norm_decay_mult=0.0,
    bias_decay_mult=0.0,
    flat_decay_mult=0.0,
    custom_keys={
        'backbone.pos_embed': dict(decay_mult=0.0),
        'backbone.cls_token': dict(decay_mult=0.0)
    })
