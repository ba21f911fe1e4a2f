"""Registered datasets (MMPretrain's DATASETS registry)."""
from .fashion_mnist import FashionMNISTIdx

__all__ = ['FashionMNISTIdx']
