# MMPretrain 1.2's plain ImageNet data (mmpretrain::_base_/datasets/
# imagenet_bs32_pil_resize.py) in the pure-Python format: a 224 px random
# crop (PIL bilinear) and a flip; tests on a 224 px centre crop of the image
# resized to 256 px on the short edge.
from mmcv.transforms import CenterCrop, LoadImageFromFile, RandomFlip
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import (ImageNet, PackInputs, RandomResizedCrop,
                                 ResizeEdge)
from mmpretrain.evaluation import Accuracy

dataset_type = ImageNet
# no type: ImageClassifier builds a ClsDataPreprocessor from it
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=RandomResizedCrop, scale=224, backend='pillow'),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=PackInputs)
]

test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=ResizeEdge, scale=256, edge='short', backend='pillow'),
    dict(type=CenterCrop, crop_size=224),
    dict(type=PackInputs)
]

train_dataloader = dict(
    batch_size=32,
    num_workers=5,
    dataset=dict(
        type=dataset_type,
        data_root='data/imagenet',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type=DefaultSampler, shuffle=True))

val_dataloader = dict(
    batch_size=32,
    num_workers=5,
    dataset=dict(
        type=dataset_type,
        data_root='data/imagenet',
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type=DefaultSampler, shuffle=False))
val_evaluator = dict(type=Accuracy, topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
