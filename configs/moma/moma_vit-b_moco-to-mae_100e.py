# MOMA, MoCo v3 ViT-B teacher -> ViT-B student initialised from MAE.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            checkpoint={{_base_.mae_vit_b_ckpt}},
            prefix='backbone.')),
    teachers=dict(_delete_=True, mocov3={{_base_.mocov3_teacher}}))
