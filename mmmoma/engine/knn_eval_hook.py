"""KNNEvalHook: k-NN accuracy of the frozen features during training.

Registered in MMPretrain's ``HOOKS``. It evaluates any MMPretrain model that
has ``extract_feat`` (MAE, MoCoV3, MomaAlgorithm, ImageClassifier) with
:func:`mmmoma.evaluation.knn_evaluate`::

    custom_hooks = [
        dict(
            type='KNNEvalHook',
            train_dataloader=dict(batch_size=256, dataset=..., ...),
            val_dataloader=dict(batch_size=256, dataset=..., ...),
            k=20,
            temperature=0.07,
            feature='cls_token',
            interval=1)
    ]
"""
from typing import Dict, Optional, Union

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from ..evaluation.knn import FEATURES, eval_dataloader_cfg, knn_evaluate


@HOOKS.register_module()
class KNNEvalHook(Hook):
    """Weighted k-NN accuracy of the model's frozen features during training.

    Every ``interval`` epochs (or iterations) and once more after training
    (unless the last step was just evaluated), features of
    ``train_dataloader`` (the memory bank) and ``val_dataloader`` are
    extracted with ``model.extract_feat`` and the queries are classified by
    :func:`~mmmoma.evaluation.knn_classify`. The accuracies are logged, put
    in the message hub as ``{prefix}/top1`` / ``{prefix}/top5`` and written
    to the visualizer's scalars (``vis_data/scalars.json``).

    Args:
        train_dataloader (dict | DataLoader): The labelled memory bank.
        val_dataloader (dict | DataLoader): The labelled queries.
        k (int): Neighbours. Defaults to 20 (DINO).
        temperature (float): Vote weight ``exp(cos / temperature)``.
            Defaults to 0.07 (DINO, InstDisc).
        feature (str): How a ViT's tokens become one vector:
            ``'cls_token'``, ``'avg_patch'`` or ``'cls_avg_patch'``; a
            backbone that already outputs (B, C) is used as is. Defaults to
            ``'cls_token'``.
        interval (int): Evaluate every ``interval`` epochs (iterations when
            ``by_epoch=False``); 0 only after training. Defaults to 1.
        by_epoch (bool): Defaults to True.
        eval_at_start (bool): Also evaluate before the first step (the
            initial weights). Defaults to False.
        prefix (str): Name of the logged scalars. Defaults to ``'knn'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 train_dataloader: Union[dict, DataLoader],
                 val_dataloader: Union[dict, DataLoader],
                 k: int = 20,
                 temperature: float = 0.07,
                 feature: str = 'cls_token',
                 interval: int = 1,
                 by_epoch: bool = True,
                 eval_at_start: bool = False,
                 prefix: str = 'knn') -> None:
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f'KNNEvalHook: k={k!r} must be an int >= 1.')
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(
                f'KNNEvalHook: temperature={temperature!r} must be > 0.')
        if feature not in FEATURES:
            raise ValueError(f'KNNEvalHook: feature={feature!r} is not '
                             f'supported; allowed: {FEATURES}.')
        if not (isinstance(interval, int) and interval >= 0):
            raise ValueError(
                f'KNNEvalHook: interval={interval!r} must be an int >= 0.')
        self.train_dataloader = train_dataloader
        self.val_dataloader = val_dataloader
        self.k = k
        self.temperature = float(temperature)
        self.feature = feature
        self.interval = interval
        self.by_epoch = by_epoch
        self.eval_at_start = eval_at_start
        self.prefix = prefix
        self.history = []
        self._last_step = None

    def _loader(self, runner, loader):
        if isinstance(loader, DataLoader):
            return loader
        return runner.build_dataloader(
            eval_dataloader_cfg(loader), seed=runner.seed)

    def before_train(self, runner) -> None:
        """Build the dataloaders; optionally evaluate the initial model."""
        self.train_dataloader = self._loader(runner, self.train_dataloader)
        self.val_dataloader = self._loader(runner, self.val_dataloader)
        if self.eval_at_start:
            self.evaluate(runner)

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.interval and self.every_n_epochs(
                runner, self.interval):
            # The loop counts the epoch as done only after this hook.
            self.evaluate(runner, epoch=runner.epoch + 1)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and self.interval and self.every_n_train_iters(
                runner, self.interval):
            self.evaluate(runner)

    def after_train(self, runner) -> None:
        """Evaluate the final weights unless that was just done."""
        if self._last_step != runner.iter:
            self.evaluate(runner)

    def evaluate(self,
                 runner,
                 epoch: Optional[int] = None) -> Dict[str, float]:
        """Run the k-NN evaluation now and log it.

        Args:
            runner (Runner): The runner.
            epoch (int, optional): Epochs completed, for the log. Defaults to
                None: ``runner.epoch``.

        Returns:
            dict[str, float]: See :func:`~mmmoma.evaluation.knn_evaluate`.
        """
        epoch = runner.epoch if epoch is None else epoch
        results = knn_evaluate(runner.model, self.train_dataloader,
                               self.val_dataloader, self.k, self.temperature,
                               self.feature)
        self._last_step = runner.iter
        scalars = {
            f'{self.prefix}/{name}': value
            for name, value in results.items() if name.startswith('top')
        }
        for name, value in scalars.items():
            runner.message_hub.update_scalar(name, value)
        runner.visualizer.add_scalars(scalars, step=runner.iter)
        accs = '  '.join(f'{n.split("/")[-1]}: {v:.2f}'
                         for n, v in scalars.items())
        runner.logger.info(
            f'k-NN ({self.feature}, k={self.k}, T={self.temperature:g}, '
            f'{results["num_train"]} bank / {results["num_val"]} queries) '
            f'epoch {epoch} iter {runner.iter}: {accs} '
            f'({results["seconds"]:.1f} s)')
        self.history.append(
            dict(epoch=epoch, iter=runner.iter, **results))
        return results
