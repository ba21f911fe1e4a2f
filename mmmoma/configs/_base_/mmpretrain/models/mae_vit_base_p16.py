# MMPretrain 1.2's MAE ViT-B/16 (mmpretrain::_base_/models/
# mae_vit-base-p16.py) in the pure-Python format: 75% masking, an 8-block
# 512-d pixel decoder, normalised-pixel L2 loss.
from mmpretrain.models import (MAE, MAEPretrainDecoder, MAEPretrainHead,
                               MAEViT, PixelReconstructionLoss)

model = dict(
    type=MAE,
    backbone=dict(type=MAEViT, arch='b', patch_size=16, mask_ratio=0.75),
    neck=dict(
        type=MAEPretrainDecoder,
        patch_size=16,
        in_chans=3,
        embed_dim=768,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
        mlp_ratio=4.),
    head=dict(
        type=MAEPretrainHead,
        norm_pix=True,
        patch_size=16,
        loss=dict(type=PixelReconstructionLoss, criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
