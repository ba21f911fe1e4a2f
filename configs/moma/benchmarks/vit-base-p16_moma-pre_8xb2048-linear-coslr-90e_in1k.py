# Linear probe of a MOMA ViT-B student on ImageNet-1k: MMPretrain's MAE
# recipe unchanged (frozen student, class token after the final norm, a BN
# neck without affine, LARS, 90 epochs, 8 GPUs x 2048 images). The student
# comes from a MOMA checkpoint directly (or from extract_student.py):
#   CKPT=work_dirs/moma_vit-b_moco-mae_100e/epoch_100.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=$CKPT
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'  # noqa: E501
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

# MomaViT is VisionTransformer (same weights, arguments, outputs) that checks
# the student checkpoint (empty path, no 'backbone.' weights, another
# architecture) and frozen_stages / out_indices against the depth.
model = dict(
    backbone=dict(
        type='MomaViT',
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
