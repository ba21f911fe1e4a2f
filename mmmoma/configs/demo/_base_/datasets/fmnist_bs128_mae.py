# Fashion-MNIST (read from the idx files of Debian's dataset-fashion-mnist,
# no download), one augmented view per image, for MAE and MOMA
# pretraining. Pure-Python form of
# configs/demo/_base_/datasets/fmnist_bs128_mae.py.
from mmcv.transforms import RandomFlip
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import PackInputs, RandomResizedCrop
from mmpretrain.models import SelfSupDataPreprocessor

from mmmoma.datasets import FashionMNISTIdx

dataset_type = FashionMNISTIdx
data_root = '/usr/share/datasets/fashion-mnist'
# train-split pixel mean / std, the same for the 3 (repeated) channels
data_preprocessor = dict(
    type=SelfSupDataPreprocessor,
    mean=[72.94, 72.94, 72.94],
    std=[90.02, 90.02, 90.02],
    to_rgb=False)

train_pipeline = [
    # choice: crops of 40-100% (MAE: 20-100% of 224 px)
    dict(
        type=RandomResizedCrop,
        scale=28,
        crop_ratio_range=(0.4, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackInputs)
]

train_dataloader = dict(
    batch_size=128,
    num_workers=0,  # the pipeline is cheap next to a CPU forward pass
    persistent_workers=False,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        with_label=False,
        img_size=28,
        # choice: an epoch is the first 10k of the 60k train images
        num_samples=10000,
        pipeline=train_pipeline))
