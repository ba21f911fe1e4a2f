"""Registered datasets and transforms (MMPretrain's registries)."""
from .fashion_mnist import FashionMNISTIdx
from .fast_random_resized_crop import FastRandomResizedCrop

__all__ = ['FashionMNISTIdx', 'FastRandomResizedCrop']
