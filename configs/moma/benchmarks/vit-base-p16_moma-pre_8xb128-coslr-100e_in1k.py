# End-to-end fine-tuning of a MOMA ViT-B student on ImageNet-1k: MMPretrain's
# MAE recipe unchanged (100 epochs, 8 GPUs x 128 images, AdamW, layer-wise lr
# decay 0.65, drop path 0.1, RandAugment, Mixup/CutMix, average-pooled
# tokens). The student comes from a MOMA checkpoint directly:
#   CKPT=work_dirs/moma_vit-b_moco-mae_100e/epoch_100.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=$CKPT
# The recipe's LearningRateDecayOptimWrapperConstructor gives the same rates
# as mmmoma's LayerDecayOptimWrapperConstructor (tests/test_engine).
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

# MomaViT: VisionTransformer with checked student loading (see the linear
# probe config). final_norm=False as in the recipe: the student's final norm
# is not loaded (logged as unexpected), a fresh one follows the pooling.
model = dict(
    backbone=dict(
        type='MomaViT',
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
