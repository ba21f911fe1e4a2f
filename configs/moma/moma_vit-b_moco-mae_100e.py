# MOMA, MoCo v3 + MAE ViT-B teachers -> randomly initialised ViT-B student,
# ImageNet-1k, 100 epochs, 8 GPUs x 256 images.
#   tools/dist_train.sh configs/moma/moma_vit-b_moco-mae_100e.py 8
_base_ = [
    '../_base_/models/moma_vit-b.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/moma_adamw_coslr_100e.py',
    '../_base_/moma_runtime.py',
]

train_dataloader = dict(
    batch_size=256,
    collate_fn=dict(_delete_=True, type='default_collate'),
    # choice (MAE: persistent workers, seeded the same every epoch): workers
    # restarted each epoch and seeded from (seed, epoch), so that a resumed
    # run repeats the lost epoch exactly; a restart costs seconds per epoch.
    persistent_workers=False,
    worker_init_fn=dict(type='epoch_worker_init_fn'))
