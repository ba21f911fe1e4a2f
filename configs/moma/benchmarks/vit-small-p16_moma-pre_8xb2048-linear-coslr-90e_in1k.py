# Linear probe of a MOMA ViT-S student (384-d, 12 blocks, 6 heads as DeiT-S;
# configs/moma/moma_vit-s_moco-mae_100e.py): the ViT-B recipe with the width
# changed.
_base_ = './vit-base-p16_moma-pre_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='deit-s'),
    neck=dict(input_features=384),
    head=dict(in_channels=384))
