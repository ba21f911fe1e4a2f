# Segmentation v2 of tools/study.py: UperNet fine-tuned end to end on the
# Fashion-MNIST mosaics (tools/dataset_converters/make_fmnist_scenes.py
# --mosaics: 3x3 native 28 px items on black, 84x84, background a class,
# 11 classes) with a study model (128-d, 4 blocks, 4x4 patches) as backbone.
# The scenes config with the mosaics' data, size and a schedule that
# converges in minutes on a CPU. The backbone and data root come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
_base_ = './upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64.py'

crop_size = (84, 84)
model = dict(
    # the pretraining's normalisation (configs/demo/_base_/datasets/
    # fmnist_bs128_*.py: Fashion-MNIST's train-split gray mean / std), not
    # ImageNet's: the mosaics are those images, black is their backdrop
    data_preprocessor=dict(
        size=crop_size,
        mean=[72.94, 72.94, 72.94],
        std=[90.02, 90.02, 90.02],
        bgr_to_rgb=False),
    backbone=dict(img_size=crop_size),  # pos_embed resized to 21x21
    # choice: strides 2, 4, 8, 16 of the image (recipe: x4, x2, x1, x0.5 of
    # the 16 px grid = strides 4 to 32): the 4 px grid is already fine, and
    # UperNet at stride 1 would cost more than the backbone
    neck=dict(rescales=[2, 1, 0.5, 0.25]),
    # choice: 32 channels (scenes: 64): a third of the head's time at 42x42
    # for 11 classes; background is a class here
    decode_head=dict(channels=32, num_classes=11),
    auxiliary_head=dict(num_classes=11))

# choice: no resizing, cropping or colour jitter: the mosaics keep the
# native scale and gray of pretraining; a flip only.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
mosaics = dict(
    _delete_=True,
    type='FashionMNISTMosaics',
    data_root='data/fmnist_mosaics')
train_dataloader = dict(
    batch_size=16,  # the probe's batch (recipe: 16 over 8 GPUs)
    dataset=dict(
        mosaics,
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    dataset=dict(
        mosaics,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# choice: 300 iterations of 16 (about 10 epochs of the 500 mosaics), 30
# warm-up; lr 1e-3 for the heads with layer decay 0.9 (recipe: 1e-4 with
# 0.65 over 12 blocks), so blocks 4..1 get 9e-4..6.6e-4 and the stem
# 5.9e-4, about the 5e-4 of the probe that first separated the models.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=30,
        end=300,
        by_epoch=False)
]
train_cfg = dict(max_iters=300, val_interval=300)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(by_epoch=False, interval=300, max_keep_ckpts=1))
