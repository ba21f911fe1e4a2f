# A tiny MMPretrain ViT classifier for testing tools/test.py on CPU: 32x32
# images in one folder per class, patch 8, a 2-layer 32-d ViT, batch 4.
# Point it at images with --cfg-options train_dataloader.dataset.data_root=DIR
# (and likewise val_/test_dataloader).
_base_ = 'mmpretrain::_base_/default_runtime.py'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2,
            feedforward_channels=64),
        img_size=32,
        patch_size=8),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=2,
        in_channels=32,
        loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(
    num_classes=2,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root='data/tiny_classes',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')]))
train_dataloader = dataloader
val_dataloader = dataloader
test_dataloader = dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
