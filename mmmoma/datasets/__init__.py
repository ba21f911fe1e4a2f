"""Registered datasets and transforms (MMPretrain's and MMSeg's registries)."""
from .checked_loading import (CheckedLoadAnnotations,
                              CheckedLoadImageFromFile, DataFileError)
from .fashion_mnist import FashionMNISTIdx
from .fmnist_mosaics import FashionMNISTMosaics
from .fast_random_resized_crop import FastRandomResizedCrop
from .mnist5k import MNIST5k

__all__ = [
    'CheckedLoadAnnotations', 'CheckedLoadImageFromFile', 'DataFileError',
    'FashionMNISTIdx', 'FashionMNISTMosaics', 'FastRandomResizedCrop',
    'MNIST5k'
]
