# UperNet on ADE20K (512x512 crops, 160k iterations, 8 GPUs x 2 images) with a
# MOMA ViT-B student as backbone: MMSegmentation's MAE recipe (feature maps of
# blocks 3, 5, 7, 11; Feature2Pyramid to strides 4/8/16/32; UPerHead and an
# FCN auxiliary head, SyncBN; AdamW 1e-4 with layer-wise lr decay 0.65;
# 1500 warm-up iterations, then linear decay; slide inference). The student
# comes from a MOMA checkpoint directly:
#   CKPT=work_dirs/moma_vit-b_moco-mae_100e/epoch_100.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=$CKPT
_base_ = 'mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the recipe's local MAE file; see backbone.init_cfg
    backbone=dict(
        _delete_=True,
        # MMPretrain's VisionTransformer (the student's own class and
        # weight names, in place of MMSeg's MAE) with checked loading.
        type='mmpretrain.MomaViT',
        arch='b',
        img_size=(512, 512),  # pos_embed resized from the 224px student
        patch_size=16,
        out_indices=[3, 5, 7, 11],
        out_type='featmap',
        final_norm=False,  # as the recipe: block outputs, no final norm
        drop_path_rate=0.1,
        # The recipe's layer scale (init_values=1.0) is left out: the MOMA
        # student has none.
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    # Feature2Pyramid's default, written out so that a CPU launch
    # (tools/dist_train.sh without GPUs) can swap SyncBN for BN.
    neck=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))

# The recipe's MMSeg constructor only knows backbones named BEiT/MAE. Same
# rule here (lr * 0.65 ** (13 - depth); heads and neck at depth 13), and no
# weight decay on norms, biases, pos_embed and cls_token as in MAE's official
# code (MMSeg's constructor compares full names and still decays the last
# two).
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.65,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            'backbone.pos_embed': dict(decay_mult=0.0),
            'backbone.cls_token': dict(decay_mult=0.0)
        }))
