# MMSegmentation 1.2's MAE ViT-B UperNet recipe on ADE20K
# (mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py) in the
# pure-Python format: 512x512 crops, 8 GPUs x 2 images, AdamW 1e-4 with
# layer-wise lr decay 0.65, 1500 warm-up iterations, then linear decay to 0
# at 160k; slide inference.
from mmengine.config import read_base
from mmengine.optim import LinearLR, OptimWrapper, PolyLR
from mmseg.engine.optimizers import LayerDecayOptimizerConstructor
from torch.optim import AdamW

with read_base():
    from .datasets.ade20k import *
    from .default_runtime import *
    from .models.upernet_mae import *
    from .schedules.schedule_160k import *

crop_size = (512, 512)
data_preprocessor.update(size=crop_size)
model.update(
    data_preprocessor=data_preprocessor,
    pretrained='./pretrain/mae_pretrain_vit_base_mmcls.pth',
    backbone=dict(
        img_size=(512, 512),
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        init_values=1.0,
        drop_path_rate=0.1,
        out_indices=[3, 5, 7, 11]),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(
        in_channels=[768, 768, 768, 768], num_classes=150, channels=768),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65),
    constructor=LayerDecayOptimizerConstructor)

param_scheduler = [
    dict(
        type=LinearLR, start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type=PolyLR,
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]

# mixed precision, in MMCV 1.x's spelling (MMEngine does not read it)
fp16 = dict(loss_scale='dynamic')

train_dataloader.update(batch_size=2)
val_dataloader.update(batch_size=1)
test_dataloader = val_dataloader
