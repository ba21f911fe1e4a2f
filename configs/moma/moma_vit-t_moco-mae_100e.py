# MOMA, MoCo v3 + MAE ViT-B teachers -> random ViT-T student (192-d, 12
# blocks, 3 heads as DeiT-T).
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(backbone=dict(arch='deit-t'))
