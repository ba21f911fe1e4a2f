"""k-NN evaluation of frozen features (MMPretrain's HOOKS registry)."""
from .knn import (KNNEvalHook, extract_features, knn_accuracy, knn_classify,
                  knn_evaluate, knn_evaluate_checkpoint, pool_features)

__all__ = [
    'KNNEvalHook', 'extract_features', 'knn_accuracy', 'knn_classify',
    'knn_evaluate', 'knn_evaluate_checkpoint', 'pool_features'
]
