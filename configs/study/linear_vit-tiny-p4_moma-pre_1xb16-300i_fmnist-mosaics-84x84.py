# Segmentation v2 of tools/study.py, linear probe: the study model frozen,
# BatchNorm + a 1x1 convolution on its last block's patch tokens (the
# 21x21 grid of 4 px patches), the logits upsampled bilinearly to the
# 84x84 mosaics: the linear segmentation of DINOv2 and RADIO
# (BNLinearHead). Data and schedule of the UperNet fine-tune config. The
# backbone and data root come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
_base_ = './upernet_vit-tiny-p4_moma-pre_1xb16-300i_fmnist-mosaics-84x84.py'

model = dict(
    backbone=dict(
        out_indices=[3],
        final_norm=True,  # the evaluated feature: last block, final norm
        frozen_stages=4),  # all: no gradient, eval mode
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='BNLinearHead',
        in_channels=128,
        channels=128,
        in_index=0,
        dropout_ratio=0.0,  # as DINOv2's linear head
        num_classes=11,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

# choice: AdamW 1e-3, weight decay 1e-4, no layer decay (nothing to decay);
# the fine-tune's 300 iterations and warm-up.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=1e-4))
