# MOMA, MoCo v3 + MAE ViT-B teachers -> randomly initialised ViT-B student,
# ImageNet-1k, 100 epochs, 8 GPUs x 256 images.
#   tools/dist_train.sh configs/moma/moma_vit-b_moco-mae_100e.py 8
_base_ = [
    '../_base_/models/moma_vit-b.py',
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/moma_adamw_coslr_100e.py',
    'mmpretrain::_base_/default_runtime.py',
]

train_dataloader = dict(
    batch_size=256,
    collate_fn=dict(_delete_=True, type='default_collate'))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True  # pick up the latest checkpoint in work_dir, as MAE does
