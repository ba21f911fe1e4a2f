# MOMA, MoCo v3 + MAE -> random ViT-B, longer schedule: 300 epochs.
_base_ = './moma_vit-b_moco-mae_100e.py'

param_scheduler = [
    dict(type='LinearLR', end=10),
    dict(type='CosineAnnealingLR', T_max=290, end=300),
]
train_cfg = dict(max_epochs=300)
