# MOMA, MoCo v3 + MAE ViT-B teachers -> random ViT-S student (384-d, 12
# blocks, 6 heads as DeiT-S); the necks map 384-d tokens to 768-d teachers.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(backbone=dict(arch='deit-s'))
