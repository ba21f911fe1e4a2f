# Runtime of the Fashion-MNIST demo configs: the project's runtime (epoch
# seeds, NaN stop, preemption), frequent logging for short epochs, and k-NN
# evaluation of the frozen features during and after training (KNNEvalHook).
_base_ = '../../_base_/moma_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))

# k-NN protocol (DINO's weighted vote, k=20, T=0.07, class token): the
# memory bank is the first 5k train images, the queries the first 2k test
# images, unaugmented. tools/demo.py reports the final numbers with a larger
# bank and the whole test split.
knn_pipeline = [dict(type='PackInputs')]
knn_dataloader = dict(
    batch_size=512,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='FashionMNISTIdx',
        data_root='/usr/share/datasets/fashion-mnist',
        split='train',
        with_label=True,
        img_size=28,
        num_samples=5000,
        pipeline=knn_pipeline))
# KNNEvalHook first: tools/demo.py and tools/study.py set its options as
# custom_hooks.0.*
custom_hooks = [
    dict(
        type='KNNEvalHook',
        train_dataloader=knn_dataloader,
        val_dataloader=dict(
            knn_dataloader,
            dataset=dict(
                knn_dataloader['dataset'], split='test', num_samples=2000)),
        k=20,
        temperature=0.07,
        feature='cls_token',
        interval=1),
    dict(type='EpochSeedHook'),
    dict(type='NonFiniteLossHook', action='stop'),
    dict(type='PreemptionHook', signal='SIGTERM'),
]

randomness = dict(seed=0, diff_rank_seed=True)
resume = False
