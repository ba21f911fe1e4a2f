# MOMA, MoCo v3 + MAE -> random ViT-B, longer schedule: 200 epochs.
_base_ = './moma_vit-b_moco-mae_100e.py'

# MMEngine replaces a list instead of merging it: the whole schedule of the
# base (10 warm-up epochs, then cosine), with the cosine stretched.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=190,
        eta_min=0.0,
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=200)
