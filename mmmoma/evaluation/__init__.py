"""k-NN evaluation and a linear probe of frozen features.

The hook that runs the k-NN evaluation during training is
:class:`mmmoma.engine.KNNEvalHook`.
"""
from .knn import (eval_dataloader_cfg, extract_features, knn_accuracy,
                  knn_classify, knn_evaluate, knn_evaluate_checkpoint,
                  pool_features)
from .linear_probe import fit_linear_probe, linear_probe, probe_scores

__all__ = [
    'eval_dataloader_cfg', 'extract_features', 'fit_linear_probe',
    'knn_accuracy', 'knn_classify', 'knn_evaluate', 'knn_evaluate_checkpoint',
    'linear_probe', 'pool_features', 'probe_scores'
]

