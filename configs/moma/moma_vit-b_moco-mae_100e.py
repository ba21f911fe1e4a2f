# MOMA, MoCo v3 + MAE ViT-B teachers -> randomly initialised ViT-B student,
# ImageNet-1k, 100 epochs, 8 GPUs x 256 images.
#   tools/dist_train.sh configs/moma/moma_vit-b_moco-mae_100e.py 8
_base_ = [
    '../_base_/models/moma_vit-b.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/moma_adamw_coslr_100e.py',
    '../_base_/moma_runtime.py',
]

# MAE's pipeline (mmpretrain::_base_/datasets/imagenet_bs512_mae.py) with one
# departure, for speed: the crop is resized by torch's antialiased uint8
# kernel, PIL's bicubic filter (MAE's) to within rounding, ~7x faster per
# image (tools/analysis_tools/data_benchmark.py). Same crops for a seed.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='FastRandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=256,
    collate_fn=dict(_delete_=True, type='default_collate'),
    # choice (MAE: persistent workers, seeded the same every epoch): workers
    # restarted each epoch and seeded from (seed, epoch), so that a resumed
    # run repeats the lost epoch exactly; a restart costs seconds per epoch.
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_worker_init_fn'),
    dataset=dict(pipeline=train_pipeline))

