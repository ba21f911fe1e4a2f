# MOMA, MAE ViT-B teacher -> ViT-B student initialised from MoCo v3.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint={{_base_.mocov3_vit_b_ckpt}},
            prefix='backbone.')),
    teachers=dict(_delete_=True, mae={{_base_.mae_teacher}}))
