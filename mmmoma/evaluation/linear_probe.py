"""Linear probe of frozen features: multinomial logistic regression.

The probe of MAE's and MoCo v3's linear evaluation, reduced to its core for
small studies on extracted features: the features are standardised with the
train set's per-channel mean and standard deviation (MAE puts a BatchNorm
without affine before its linear head for the same reason), then one linear
layer is fitted to the train labels by full-batch L-BFGS on the mean
cross-entropy plus an L2 penalty on the weights. The loss is convex and the
weights start at zero, so the result depends only on the inputs and the
settings: no seed, no data order.
"""
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F


def _check(feats: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if feats.dim() != 2:
        raise ValueError(f'linear_probe: {name}_feats must be (N, C); got '
                         f'shape {tuple(feats.shape)}.')
    if labels.dim() != 1 or labels.shape[0] != feats.shape[0]:
        raise ValueError(
            f'linear_probe: {name}_labels must be (N, ) with N = '
            f'{feats.shape[0]} ({name}_feats); got shape '
            f'{tuple(labels.shape)}.')
    if feats.shape[0] == 0:
        raise ValueError(f'linear_probe: {name}_feats is empty.')


def fit_linear_probe(train_feats: torch.Tensor,
                     train_labels: torch.Tensor,
                     num_classes: int,
                     weight_decay: float = 1e-4,
                     max_iter: int = 200) -> Dict[str, torch.Tensor]:
    """Fit standardisation and a linear classifier on train features.

    Args:
        train_feats (torch.Tensor): (N, C) features.
        train_labels (torch.Tensor): (N, ) int labels in
            ``[0, num_classes)``.
        num_classes (int): Number of classes K.
        weight_decay (float): L2 penalty ``weight_decay / 2 * |W|^2`` added
            to the mean cross-entropy (not on the bias). Defaults to 1e-4.
        max_iter (int): L-BFGS iterations. Defaults to 200.

    Returns:
        dict[str, torch.Tensor]: ``mean`` (C, ), ``std`` (C, ), ``weight``
        (K, C) and ``bias`` (K, ), float64 on the features' device.
    """
    _check(train_feats, train_labels, 'train')
    if not weight_decay >= 0:
        raise ValueError(
            f'linear_probe: weight_decay={weight_decay!r} must be >= 0.')
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(
            f'linear_probe: max_iter={max_iter!r} must be an int >= 1.')
    labels = train_labels.long().to(train_feats.device)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f'linear_probe: labels must lie in [0, {num_classes}); got '
            f'{int(labels.min())}..{int(labels.max())}.')
    # float64: L-BFGS stops on tolerances that float32 noise would trip.
    x = train_feats.double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp(min=1e-6)
    x = (x - mean) / std  # (N, C)
    weight = x.new_zeros(num_classes, x.shape[1], requires_grad=True)
    bias = x.new_zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias],
                                  lr=1.0,
                                  max_iter=max_iter,
                                  history_size=20,
                                  tolerance_grad=1e-9,
                                  tolerance_change=1e-12,
                                  line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.t() + bias, labels)
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return dict(
        mean=mean,
        std=std,
        weight=weight.detach(),
        bias=bias.detach())


def probe_scores(probe: Dict[str, torch.Tensor],
                 feats: torch.Tensor) -> torch.Tensor:
    """Class scores (N, K) of a fitted probe on (N, C) features."""
    x = ((feats.double().to(probe['mean'].device) - probe['mean'])
         / probe['std'])
    return x @ probe['weight'].t() + probe['bias']


def linear_probe(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 num_classes: Optional[int] = None,
                 weight_decay: float = 1e-4,
                 max_iter: int = 200,
                 topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Accuracy (%) of a linear classifier fitted on frozen train features.

    Only ``train_feats`` and ``train_labels`` are used for fitting (the
    standardisation included); the test set is classified once.

    Args:
        train_feats (torch.Tensor): (N, C) features of the labelled train set.
        train_labels (torch.Tensor): (N, ) int labels.
        test_feats (torch.Tensor): (M, C) features to classify.
        test_labels (torch.Tensor): (M, ) int labels.
        num_classes (int, optional): Defaults to None: one more than the
            largest label seen.
        weight_decay (float): See :func:`fit_linear_probe`. Defaults to 1e-4.
        max_iter (int): See :func:`fit_linear_probe`. Defaults to 200.
        topk (Sequence[int]): Which top-k accuracies; those above the number
            of classes are skipped. Defaults to (1, 5).

    Returns:
        dict[str, float]: ``top1`` (and ``top5``) on the test set,
        ``train_top1`` on the train set, ``seconds``, all accuracies in
        percent.
    """
    start = time.time()
    _check(test_feats, test_labels, 'test')
    if test_feats.shape[1] != train_feats.shape[1]:
        raise ValueError(
            f'linear_probe: test_feats have {test_feats.shape[1]} channels, '
            f'train_feats {train_feats.shape[1]}.')
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    probe = fit_linear_probe(train_feats, train_labels, num_classes,
                             weight_decay, max_iter)
    results = {}
    scores = probe_scores(probe, test_feats)
    ranked = scores.argsort(dim=1, descending=True)
    labels = test_labels.long().to(ranked.device)
    for n in topk:
        if n > num_classes:
            continue
        hit = (ranked[:, :n] == labels[:, None]).any(dim=1)
        results[f'top{n}'] = 100.0 * hit.double().mean().item()
    train_pred = probe_scores(probe, train_feats).argmax(dim=1)
    results['train_top1'] = 100.0 * (train_pred == train_labels.long().to(
        train_pred.device)).double().mean().item()
    results['seconds'] = time.time() - start
    return results
