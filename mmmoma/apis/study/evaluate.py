"""Evaluation of every run: k-NN and a linear probe on frozen class
tokens of the test split, in this process."""
import os.path as osp
import time
from typing import Optional

from mmmoma.fileio import load_checkpoint
from ..common import Progress, load_config, read_cache, write_cache
from .rows import EVAL_ARCH, KNN, PROBE, STUDENT_CONFIG


class Evaluator:
    """k-NN and linear probe of frozen class tokens, one model at a time.

    Every row is evaluated with the same network (the study's ViT, its
    class token after the final LayerNorm) and the same data loaders.

    Args:
        preset (dict): The preset: ``eval_train`` / ``eval_test`` images
            and ``probe_iters``.
        data_root (str, optional): ``--data-root``.
    """

    def __init__(self, preset: dict, data_root: Optional[str]) -> None:
        import torch
        from torch.utils.data import DataLoader

        from mmmoma.datasets import FashionMNISTIdx
        self.torch = torch
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        cfg = load_config(STUDENT_CONFIG)
        self.pre = (cfg.model.data_preprocessor if 'data_preprocessor'
                    in cfg.model else cfg.data_preprocessor)
        self.models = {}  # patch size -> ImageClassifier
        from mmengine.dataset import default_collate
        root = {'data_root': data_root} if data_root else {}
        self.loaders = {}
        for split, num in (('train', preset['eval_train']),
                           ('test', preset['eval_test'])):
            dataset = FashionMNISTIdx(
                **root,
                split=split,
                with_label=True,
                img_size=28,
                num_samples=num,
                pipeline=[dict(type='PackInputs')])
            self.loaders[split] = DataLoader(
                dataset,
                batch_size=512,
                shuffle=False,
                num_workers=0,
                collate_fn=default_collate)
        self.probe = dict(PROBE, max_iter=preset['probe_iters'])
        self.protocol = dict(
            KNN, **self.probe, feature='cls_token',
            eval_train=preset['eval_train'], eval_test=preset['eval_test'],
            data_root=data_root)

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

    def evaluate(self, checkpoint: Optional[str],
                 patch_size: int = 4) -> dict:
        """k-NN and linear probe of a checkpoint (None: random student)."""
        from mmmoma.evaluation import (extract_features, knn_accuracy,
                                       linear_probe)
        start = time.time()
        self.load(checkpoint, patch_size)
        train = extract_features(self.model, self.loaders['train'])
        test = extract_features(self.model, self.loaders['test'])
        knn = knn_accuracy(*train, *test, num_classes=10, **KNN)
        probe = linear_probe(*train, *test, num_classes=10, **self.probe)
        return dict(
            knn_top1=knn['top1'],
            knn_top5=knn['top5'],
            linear_top1=probe['top1'],
            linear_top5=probe['top5'],
            linear_train_top1=probe['train_top1'],
            eval_seconds=time.time() - start)


def evaluate_run(evaluator: Evaluator, work: str, key: str,
                 checkpoint: Optional[str], force: bool,
                 progress: Progress, patch_size: int = 4) -> dict:
    """Cached k-NN / linear results of one run."""
    cache = osp.join(work, 'eval', f'{key}.json')
    cache_key = dict(
        protocol=evaluator.protocol,
        checkpoint=checkpoint,
        mtime=osp.getmtime(checkpoint) if checkpoint else None)
    if patch_size != 4:  # the study's grid; older caches lack the key
        cache_key['patch_size'] = patch_size
    cached = read_cache(cache, cache_key, force)
    if cached is not None:
        progress.finish(f'eval {key}')
        return cached
    results = evaluator.evaluate(checkpoint, patch_size)
    write_cache(cache, cache_key, results)
    progress.finish(f'eval {key}')
    progress.log(f'{key}: k-NN {results["knn_top1"]:.2f}%, linear '
                 f'{results["linear_top1"]:.2f}% '
                 f'({results["eval_seconds"]:.0f} s)')
    return results
