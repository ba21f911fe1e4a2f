# MOMA with a teacher on another patch grid: DINOv2 ViT-B/14 + MAE ViT-B/16
# -> randomly initialised ViT-B/16 student. Not in the paper (its teachers
# are MoCo v3 and MAE); DINOv2 stands in for the contrastive teacher.
#   tools/dist_train.sh configs/moma/moma_vit-b_dinov2-mae_100e.py 8
_base_ = './moma_vit-b_moco-mae_100e.py'

# MMPretrain's conversion of the official DINOv2 ViT-B/14 (backbone only).
dinov2_vit_b_ckpt = 'https://download.openmmlab.com/mmpretrain/v1.0/dinov2/vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth'  # noqa: E501

model = dict(
    teachers=dict(
        _delete_=True,
        # 14-px patches: 16 x 16 tokens at 224 px against the student's
        # 14 x 14. Its patch features are resampled to the student's grid
        # (teacher_resample, bilinear), its class token kept. The checkpoint
        # holds a 518-px (37 x 37) position embedding, resized on load.
        dinov2=dict(
            type='mmpretrain.VisionTransformer',
            arch='base',
            img_size=224,
            patch_size=14,
            layer_scale_init_value=1e-5,
            out_type='raw',
            out_indices=-1,
            init_cfg=dict(
                type='Pretrained',
                checkpoint=dinov2_vit_b_ckpt,
                prefix='backbone.')),
        mae={{_base_.mae_teacher}}),
    teacher_resample='bilinear')
