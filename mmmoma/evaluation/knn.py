"""Weighted k-NN evaluation of frozen features.

The protocol of `InstDisc <https://arxiv.org/abs/1805.01978>`_ and
`DINO <https://arxiv.org/abs/2104.14294>`_: features of a labelled train set
(the memory bank) and of a test set are L2-normalised; each test image takes
its ``k`` most cosine-similar bank images, each neighbour votes for its label
with weight ``exp(similarity / temperature)``, and the class with the largest
total wins.

:func:`knn_evaluate` evaluates a model on two dataloaders,
:func:`knn_evaluate_checkpoint` a config's model from a checkpoint;
:class:`mmmoma.engine.KNNEvalHook` runs it during and after training. Both
dataloaders need labelled samples (``gt_label``) and a deterministic
pipeline; on ImageNet use the ``val`` pipeline of a classification config for
both.
"""
import copy
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from torch import nn
from torch.utils.data import DataLoader

from ..fileio import load_checkpoint

FEATURES = ('cls_token', 'avg_patch', 'cls_avg_patch')


def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 num_classes: int,
                 k: int = 20,
                 temperature: float = 0.07,
                 chunk_size: int = 1024) -> torch.Tensor:
    """Class scores of a temperature-weighted k-NN vote.

    Args:
        train_feats (torch.Tensor): (N, C) memory bank features.
        train_labels (torch.Tensor): (N, ) int labels in ``[0, num_classes)``.
        test_feats (torch.Tensor): (M, C) query features.
        num_classes (int): Number of classes.
        k (int): Neighbours per query; at most N are used. Defaults to 20.
        temperature (float): Vote weight ``exp(cos / temperature)``.
            Defaults to 0.07.
        chunk_size (int): Queries per similarity matrix, to bound memory.
            Defaults to 1024.

    Returns:
        torch.Tensor: (M, num_classes) summed vote weights.
    """
    if k < 1:
        raise ValueError(f'knn_classify: k={k!r} must be >= 1.')
    if not temperature > 0:
        raise ValueError(
            f'knn_classify: temperature={temperature!r} must be > 0.')
    if train_feats.shape[0] != train_labels.shape[0]:
        raise ValueError(
            f'knn_classify: {train_feats.shape[0]} bank features but '
            f'{train_labels.shape[0]} labels.')
    bank = F.normalize(train_feats.float(), dim=1)  # (N, C)
    labels = train_labels.long().to(bank.device)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, test_feats.shape[0], chunk_size):
        query = F.normalize(
            test_feats[start:start + chunk_size].float().to(bank.device),
            dim=1)  # (m, C)
        sim, idx = (query @ bank.t()).topk(k, dim=1)  # (m, k)
        weight = (sim / temperature).exp()
        votes = weight.new_zeros(query.shape[0], num_classes)
        scores.append(votes.scatter_add_(1, labels[idx], weight))
    return torch.cat(scores) if scores else bank.new_zeros(0, num_classes)


def knn_accuracy(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 k: int = 20,
                 temperature: float = 0.07,
                 topk: Sequence[int] = (1, 5),
                 num_classes: Optional[int] = None) -> Dict[str, float]:
    """Top-k accuracy (%) of :func:`knn_classify`.

    Args:
        train_feats, train_labels, test_feats: See :func:`knn_classify`.
        test_labels (torch.Tensor): (M, ) int labels.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Defaults to 0.07.
        topk (Sequence[int]): Which top-k accuracies; those above the number
            of classes are skipped. Defaults to (1, 5).
        num_classes (int, optional): Defaults to None: one more than the
            largest label seen.

    Returns:
        dict[str, float]: ``{'top1': ..., 'top5': ...}`` in percent.
    """
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_classify(train_feats, train_labels, test_feats, num_classes,
                          k, temperature)
    test_labels = test_labels.long().to(scores.device)
    ranked = scores.argsort(dim=1, descending=True)
    results = {}
    for n in topk:
        if n > num_classes:
            continue
        hit = (ranked[:, :n] == test_labels[:, None]).any(dim=1)
        results[f'top{n}'] = 100.0 * hit.float().mean().item()
    return results


def pool_features(feats: torch.Tensor,
                  feature: str = 'cls_token',
                  num_extra_tokens: int = 1) -> torch.Tensor:
    """One vector per image from a backbone output.

    Args:
        feats (torch.Tensor): (B, C) already pooled (used as is),
            (B, N, C) tokens with ``num_extra_tokens`` class tokens first
            (ViT ``out_type='raw'``), or (B, C, H, W) maps.
        feature (str): For tokens: ``'cls_token'``, ``'avg_patch'`` (mean of
            the patch tokens) or ``'cls_avg_patch'`` (both, concatenated).
            A map is always averaged. Defaults to ``'cls_token'``.
        num_extra_tokens (int): Class tokens before the patch tokens.
            Defaults to 1.

    Returns:
        torch.Tensor: (B, C) or (B, 2C) for ``'cls_avg_patch'``.
    """
    if feature not in FEATURES:
        raise ValueError(f'k-NN: feature={feature!r} is not supported; '
                         f'allowed: {FEATURES}.')
    if feats.dim() == 2:
        return feats
    if feats.dim() == 4:
        return feats.mean(dim=(2, 3))
    if feats.dim() != 3:
        raise ValueError(f'k-NN: cannot pool backbone output of shape '
                         f'{tuple(feats.shape)}; expected (B, C), (B, N, C) '
                         'or (B, C, H, W).')
    if feature != 'avg_patch' and num_extra_tokens < 1:
        raise ValueError(f"k-NN: feature={feature!r} needs a class token, "
                         "but the backbone has none; use 'avg_patch'.")
    cls = feats[:, 0]
    patches = feats[:, num_extra_tokens:].mean(dim=1)
    if feature == 'cls_token':
        return cls
    if feature == 'avg_patch':
        return patches
    return torch.cat([cls, patches], dim=1)


def _gather(tensors: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
    """Concatenate each tensor's rows from all ranks (rank order)."""
    if get_world_size() == 1:
        return tensors
    sizes = all_gather(tensors[0].new_tensor([tensors[0].shape[0]]).long())
    longest = int(max(s.item() for s in sizes))
    out = []
    for t in tensors:
        padded = t.new_zeros((longest, ) + tuple(t.shape[1:]))
        padded[:t.shape[0]] = t
        parts = all_gather(padded)
        out.append(
            torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)]))
    return tuple(out)


@torch.no_grad()
def extract_features(model: nn.Module,
                     dataloader: DataLoader,
                     feature: str = 'cls_token') -> Tuple[torch.Tensor,
                                                          torch.Tensor]:
    """Frozen features and labels of every sample of ``dataloader``.

    The model (unwrapped from DDP) runs ``extract_feat`` in eval mode under
    ``no_grad``; its train/eval mode is restored afterwards. Under DDP every
    rank gets the features of the whole dataset, each sample once.

    Args:
        model (nn.Module): An MMPretrain model with ``data_preprocessor`` and
            ``extract_feat``, possibly wrapped.
        dataloader (DataLoader): Labelled samples (``gt_label``).
        feature (str): See :func:`pool_features`. Defaults to
            ``'cls_token'``.

    Returns:
        tuple: ``feats`` (N, C) float and ``labels`` (N, ) long, in dataset
        order.
    """
    if is_model_wrapper(model):
        model = model.module
    backbone = getattr(model, 'backbone', None)
    num_extra = getattr(backbone, 'num_extra_tokens', 1)
    was_training = model.training
    model.eval()
    feats, labels, indices = [], [], []
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):
                inputs = inputs[0]  # a single view
            out = model.extract_feat(inputs)
            if isinstance(out, (list, tuple)):
                out = out[-1]
            feats.append(pool_features(out, feature, num_extra).float())
            samples = data['data_samples']
            if samples is None or 'gt_label' not in samples[0]:
                raise ValueError(
                    'k-NN: the dataloader gives no gt_label; build its '
                    'dataset with labels (e.g. FashionMNISTIdx(with_label='
                    'True)).')
            labels.append(
                torch.cat([s.gt_label.view(-1)[:1] for s in samples]))
            indices.append(
                torch.tensor([s.sample_idx for s in samples]))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError('k-NN: the dataloader gave no batches.')
    device = feats[0].device
    feats, labels, indices = _gather(
        (torch.cat(feats), torch.cat(labels).to(device),
         torch.cat(indices).to(device)))
    # A distributed sampler repeats samples to even out the ranks.
    order = torch.argsort(indices, stable=True)
    indices = indices[order]
    first = torch.ones_like(indices, dtype=torch.bool)
    first[1:] = indices[1:] != indices[:-1]
    keep = order[first]
    return feats[keep], labels[keep]


def _num_classes(dataloader: DataLoader, labels: torch.Tensor) -> int:
    classes = getattr(dataloader.dataset, 'metainfo', {}).get('classes')
    return len(classes) if classes else int(labels.max()) + 1


def eval_dataloader_cfg(loader: dict) -> dict:
    """A copy of a dataloader config with evaluation defaults filled in.

    Args:
        loader (dict): A dataloader config (``dataset``, ``batch_size``...).

    Returns:
        dict: The copy, with ``default_collate`` and an unshuffled
        ``DefaultSampler`` unless ``loader`` names its own.
    """
    loader = copy.deepcopy(loader)
    loader.setdefault('collate_fn', dict(type='default_collate'))
    loader.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
    return loader


def knn_evaluate(model: nn.Module,
                 train_dataloader: DataLoader,
                 val_dataloader: DataLoader,
                 k: int = 20,
                 temperature: float = 0.07,
                 feature: str = 'cls_token',
                 topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """Weighted k-NN accuracy of a model's frozen features.

    Args:
        model (nn.Module): See :func:`extract_features`.
        train_dataloader (DataLoader): The memory bank.
        val_dataloader (DataLoader): The queries.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Defaults to 0.07.
        feature (str): See :func:`pool_features`. Defaults to
            ``'cls_token'``.
        topk (Sequence[int]): Defaults to (1, 5).

    Returns:
        dict[str, float]: ``top1``, ``top5`` (%), plus ``num_train``,
        ``num_val`` and ``seconds``.
    """
    start = time.time()
    train_feats, train_labels = extract_features(model, train_dataloader,
                                                 feature)
    val_feats, val_labels = extract_features(model, val_dataloader, feature)
    num_classes = max(
        _num_classes(train_dataloader, train_labels),
        int(val_labels.max()) + 1)
    results = knn_accuracy(train_feats, train_labels, val_feats, val_labels,
                           k, temperature, topk, num_classes)
    results.update(
        num_train=int(train_feats.shape[0]),
        num_val=int(val_feats.shape[0]),
        seconds=time.time() - start)
    return results


def find_knn_hook(cfg) -> Optional[dict]:
    """The first ``KNNEvalHook`` of a config's ``custom_hooks``, its type
    a name (``'KNNEvalHook'``, scoped or not) or the class (a pure-Python
    config); None without one."""
    from mmmoma.engine.knn_eval_hook import KNNEvalHook
    for hook in cfg.get('custom_hooks', None) or []:
        kind = hook.get('type')
        if (isinstance(kind, str) and kind.split('.')[-1] == 'KNNEvalHook'
                or isinstance(kind, type) and issubclass(kind, KNNEvalHook)):
            return hook
    return None


def knn_evaluate_checkpoint(config,
                            checkpoint: Optional[str] = None,
                            cfg_options: Optional[dict] = None,
                            train_dataloader: Optional[dict] = None,
                            val_dataloader: Optional[dict] = None,
                            device: Optional[str] = None,
                            **knn_args) -> Dict[str, float]:
    """k-NN accuracy of a config's model, from a checkpoint or random init.

    The dataloaders and k-NN settings default to the config's
    ``KNNEvalHook`` in ``custom_hooks``.

    Args:
        config (str | Config): The training config.
        checkpoint (str, optional): Weights with the model's keys (under
            ``state_dict`` or at the top level), read by
            :func:`mmmoma.fileio.load_checkpoint` and loaded strictly.
            Defaults to None: the randomly initialised model
            (``init_weights``).
        cfg_options (dict, optional): Merged into the config first.
        train_dataloader (dict, optional): Overrides the hook's.
        val_dataloader (dict, optional): Overrides the hook's.
        device (str, optional): Where the model runs. Defaults to None:
            ``'cuda'`` if available, else ``'cpu'``.
        **knn_args: ``k``, ``temperature``, ``feature`` overriding the hook's.

    Returns:
        dict[str, float]: See :func:`knn_evaluate`.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    from mmpretrain.registry import MODELS

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    hook = copy.deepcopy(find_knn_hook(cfg) or {})
    train_loader = train_dataloader or hook.get('train_dataloader')
    val_loader = val_dataloader or hook.get('val_dataloader')
    if train_loader is None or val_loader is None:
        raise ValueError('knn_evaluate_checkpoint: the config has no '
                         'KNNEvalHook in custom_hooks; pass train_dataloader '
                         'and val_dataloader.')
    args = {
        key: knn_args.get(key, hook.get(key, default))
        for key, default in (('k', 20), ('temperature', 0.07),
                             ('feature', 'cls_token'))
    }
    scope = cfg.get('default_scope', 'mmpretrain')
    if DefaultScope.get_current_instance() is None:
        init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor') is not None:
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(model_cfg)
        if checkpoint is None:
            model.init_weights()
        else:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'knn_evaluate_checkpoint: checkpoint={checkpoint!r} '
                    'does not exist.')
            # MMEngine's load_checkpoint with mmmoma's reading policy.
            _load_checkpoint_to_model(
                model,
                load_checkpoint(checkpoint, 'checkpoint'),
                strict=True,
                logger=MMLogger.get_current_instance())
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        model.to(device)
        loaders = [
            Runner.build_dataloader(eval_dataloader_cfg(loader), seed=0)
            for loader in (train_loader, val_loader)
        ]
        return knn_evaluate(model, loaders[0], loaders[1], **args)
