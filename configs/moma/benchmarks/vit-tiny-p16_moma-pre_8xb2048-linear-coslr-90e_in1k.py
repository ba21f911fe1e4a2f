# Linear probe of a MOMA ViT-T student (192-d, 12 blocks, 3 heads as DeiT-T;
# configs/moma/moma_vit-t_moco-mae_100e.py): the ViT-B recipe with the width
# changed.
_base_ = './vit-base-p16_moma-pre_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='deit-t'),
    neck=dict(input_features=192),
    head=dict(in_channels=192))
