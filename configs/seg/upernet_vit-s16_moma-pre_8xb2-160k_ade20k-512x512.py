# UperNet on ADE20K with a MOMA ViT-S student (384-d, 12 blocks, 6 heads as
# DeiT-S): the ViT-B config with the backbone width changed. The heads keep
# the recipe's 768 channels so that students differ only in the backbone.
_base_ = './upernet_vit-b16_moma-pre_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='deit-s'),
    neck=dict(embed_dim=384),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
