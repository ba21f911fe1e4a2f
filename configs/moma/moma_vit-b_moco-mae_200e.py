# MOMA, MoCo v3 + MAE -> random ViT-B, longer schedule: 200 epochs.
_base_ = './moma_vit-b_moco-mae_100e.py'

param_scheduler = [
    dict(type='LinearLR', end=10),
    dict(type='CosineAnnealingLR', T_max=190, end=200),
]
train_cfg = dict(max_epochs=200)
