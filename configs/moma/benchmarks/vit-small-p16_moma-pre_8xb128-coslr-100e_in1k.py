# Fine-tuning of a MOMA ViT-S student (DeiT-S shape): the ViT-B recipe with
# the width changed; layer decay 0.65 and drop path 0.1 are kept so that the
# students differ only in the backbone.
_base_ = './vit-base-p16_moma-pre_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

model = dict(backbone=dict(arch='deit-s'), head=dict(in_channels=384))
