# MOMA (arXiv 2302.02089): MoCo v3 + MAE ViT-B teachers -> ViT-B student.
# The one full model dict; variants restate only what differs.
# Where the paper's detail is unknown here, the value below is a documented
# choice (marked "choice:") and a config option.
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

# MMPretrain-hosted checkpoints of the official recipes (ImageNet-1k).
mae_vit_b_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k/mae_vit-base-p16_8xb512-fp16-coslr-1600e_in1k_20220825-f7569ca2.pth'  # noqa: E501
mocov3_vit_b_ckpt = 'https://download.openmmlab.com/mmselfsup/1.x/mocov3/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k/mocov3_vit-base-p16_16xb256-amp-coslr-300e_in1k-224_20220826-25213343.pth'  # noqa: E501

# Frozen teachers see the original 224px image. out_type='raw': all tokens;
# out_indices=-1: choice: the last block after the final LayerNorm, the
# feature each teacher was trained to produce (MAE's encoder output, MoCo v3's
# class token and patch tokens).
mocov3_teacher = dict(
    type='mmpretrain.MoCoV3ViT',
    arch='b',
    img_size=224,
    patch_size=16,
    out_type='raw',
    out_indices=-1,
    init_cfg=dict(
        type='Pretrained', checkpoint=mocov3_vit_b_ckpt, prefix='backbone.'))
mae_teacher = dict(
    type='mmpretrain.VisionTransformer',
    arch='b',
    img_size=224,
    patch_size=16,
    out_type='raw',
    out_indices=-1,
    init_cfg=dict(
        type='Pretrained', checkpoint=mae_vit_b_ckpt, prefix='backbone.'))

model = dict(
    type='MomaAlgorithm',
    # The student: MAE's masked ViT (visible tokens only, fixed sin-cos
    # positions), randomly initialised in the MoCo v3 + MAE mode. No
    # stop-gradient on its patch embedding (MoCo v3 has one; MOMA does not).
    backbone=dict(type='mmpretrain.MAEViT', arch='b', patch_size=16),
    mask_ratio=0.9,  # the paper's "extremely high" ratio
    teachers=dict(mocov3=mocov3_teacher, mae=mae_teacher),
    # loss_weights=None: the average over teachers, as in the paper.
    loss_weights=None,
    mask_teacher_input=False,  # True is the paper's (harmful) ablation
    neck=dict(
        type='MomaNeck',
        # choice: an MAE-style feature decoder that predicts every position,
        # so hidden patches carry the signal; 2 blocks of 512-d (MAE uses 8)
        # keep it light next to the student, which is what makes MOMA cheap.
        mode='decoder',
        decoder_embed_dims=512,
        decoder_depth=2,
        decoder_num_heads=16),
    head=dict(
        type='SmoothL1AlignHead',
        beta=1.0,  # choice: PyTorch's default; targets are LayerNorm'd
        target_norm='layer_norm',  # per token, no affine (as MaskFeat/MILAN)
        # choice: every position, as the unmasked teachers give a target
        # everywhere; the class token carries MoCo v3's global embedding.
        positions='all',
        with_cls_token=True))
