"""k-NN evaluation of frozen features (MMPretrain's HOOKS registry) and a
linear probe on extracted features."""
from .knn import (KNNEvalHook, extract_features, knn_accuracy, knn_classify,
                  knn_evaluate, knn_evaluate_checkpoint, pool_features)
from .linear_probe import fit_linear_probe, linear_probe, probe_scores

__all__ = [
    'KNNEvalHook', 'extract_features', 'fit_linear_probe', 'knn_accuracy',
    'knn_classify', 'knn_evaluate', 'knn_evaluate_checkpoint', 'linear_probe',
    'pool_features', 'probe_scores'
]
