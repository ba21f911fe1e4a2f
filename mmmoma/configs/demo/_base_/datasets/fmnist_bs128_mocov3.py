# Fashion-MNIST, two augmented views per image for MoCo v3. Pure-Python form
# of configs/demo/_base_/datasets/fmnist_bs128_mocov3.py.
# choice: colour jitter keeps brightness and contrast only, no grayscale or
# blur: the images are gray and 28 px.
from mmcv.transforms import RandomApply, RandomFlip
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import (ColorJitter, MultiView, PackInputs,
                                 RandomResizedCrop, Solarize)
from mmpretrain.models import SelfSupDataPreprocessor

from mmmoma.datasets import FashionMNISTIdx

dataset_type = FashionMNISTIdx
data_root = '/usr/share/datasets/fashion-mnist'
data_preprocessor = dict(
    type=SelfSupDataPreprocessor,
    mean=[72.94, 72.94, 72.94],
    std=[90.02, 90.02, 90.02],
    to_rgb=False)

view_pipeline1 = [
    dict(
        type=RandomResizedCrop,
        scale=28,
        crop_ratio_range=(0.2, 1.),
        backend='pillow'),
    dict(
        type=RandomApply,
        transforms=[
            dict(
                type=ColorJitter,
                brightness=0.4,
                contrast=0.4,
                saturation=0.,
                hue=0.)
        ],
        prob=0.8),
    dict(type=RandomFlip, prob=0.5),
]
view_pipeline2 = [
    dict(
        type=RandomResizedCrop,
        scale=28,
        crop_ratio_range=(0.2, 1.),
        backend='pillow'),
    dict(
        type=RandomApply,
        transforms=[
            dict(
                type=ColorJitter,
                brightness=0.4,
                contrast=0.4,
                saturation=0.,
                hue=0.)
        ],
        prob=0.8),
    dict(type=Solarize, thr=128, prob=0.2),
    dict(type=RandomFlip, prob=0.5),
]
train_pipeline = [
    dict(
        type=MultiView,
        num_views=[1, 1],
        transforms=[view_pipeline1, view_pipeline2]),
    dict(type=PackInputs)
]

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        with_label=False,
        img_size=28,
        num_samples=10000,  # choice: see fmnist_bs128_mae.py
        pipeline=train_pipeline))
