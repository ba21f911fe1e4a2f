# MOMA (arXiv 2302.02089): MoCo v3 + MAE ViT-B teachers -> ViT-B student.
# Pure-Python form of configs/_base_/models/moma_vit-b.py, which explains
# each value; values marked "choice:" there are this project's where the
# paper gives none.
from mmpretrain.models import MAEViT, MoCoV3ViT, VisionTransformer

from mmmoma.models import MomaAlgorithm, MomaNeck, SmoothL1AlignHead

# Import mmmoma while the config is read (see
# ../mmpretrain/default_runtime.py).
__import__('mmmoma')

# MMPretrain-hosted checkpoints of the official recipes (ImageNet-1k).
mae_vit_b_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k_20220825-f7569ca2.pth'  # noqa: E501
mocov3_vit_b_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k-224_20220826-25213343.pth'  # noqa: E501

# Frozen teachers on the 224 px image; every token of the last block after
# the final LayerNorm (choice).
mocov3_teacher = dict(
    type=MoCoV3ViT,
    arch='b',
    img_size=224,
    patch_size=16,
    out_type='raw',
    out_indices=-1,
    init_cfg=dict(
        type='Pretrained', checkpoint=mocov3_vit_b_ckpt, prefix='backbone.'))
mae_teacher = dict(
    type=VisionTransformer,
    arch='b',
    img_size=224,
    patch_size=16,
    out_type='raw',
    out_indices=-1,
    init_cfg=dict(
        type='Pretrained', checkpoint=mae_vit_b_ckpt, prefix='backbone.'))

model = dict(
    type=MomaAlgorithm,
    # MAE's masked ViT, randomly initialised; no stop-gradient on its patch
    # embedding.
    backbone=dict(type=MAEViT, arch='b', patch_size=16),
    mask_ratio=0.9,  # the paper's "extremely high" ratio
    teachers=dict(mocov3=mocov3_teacher, mae=mae_teacher),
    loss_weights=None,  # the average over teachers, as in the paper
    mask_teacher_input=False,  # True is the paper's (harmful) ablation
    # choice: a 2-block 512-d feature decoder that predicts every position
    neck=dict(
        type=MomaNeck,
        mode='decoder',
        decoder_embed_dims=512,
        decoder_depth=2,
        decoder_num_heads=16),
    # choice: smooth L1 (beta 1) on per-token LayerNorm'd targets at every
    # position, class token included
    head=dict(
        type=SmoothL1AlignHead,
        beta=1.0,
        target_norm='layer_norm',
        positions='all',
        with_cls_token=True))
