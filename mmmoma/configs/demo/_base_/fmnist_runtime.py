# Runtime of the Fashion-MNIST demo configs: the project's runtime, frequent
# logging for short epochs, and k-NN evaluation of the frozen features
# during training (KNNEvalHook). Pure-Python form of
# configs/demo/_base_/fmnist_runtime.py.
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, LoggerHook
from mmpretrain.datasets import PackInputs

from mmmoma.datasets import FashionMNISTIdx
from mmmoma.engine import (EpochSeedHook, KNNEvalHook, NonFiniteLossHook,
                           PreemptionHook)

with read_base():
    from ..._base_.moma_runtime import *

default_hooks.update(
    logger=dict(type=LoggerHook, interval=10),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=1))

# k-NN protocol (weighted vote, k=20, T=0.07, class token): the first 5k
# train images as memory bank, the first 2k test images as queries.
knn_pipeline = [dict(type=PackInputs)]
knn_dataloader = dict(
    batch_size=512,
    num_workers=0,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=FashionMNISTIdx,
        data_root='/usr/share/datasets/fashion-mnist',
        split='train',
        with_label=True,
        img_size=28,
        num_samples=5000,
        pipeline=knn_pipeline))
# KNNEvalHook first: tools/demo.py and tools/study.py set custom_hooks.0.*
custom_hooks = [
    dict(
        type=KNNEvalHook,
        train_dataloader=knn_dataloader,
        val_dataloader=dict(
            knn_dataloader,
            dataset=dict(
                knn_dataloader['dataset'], split='test', num_samples=2000)),
        k=20,
        temperature=0.07,
        feature='cls_token',
        interval=1),
    dict(type=EpochSeedHook),
    dict(type=NonFiniteLossHook, action='stop'),
    dict(type=PreemptionHook, signal='SIGTERM'),
]

randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
resume = False
