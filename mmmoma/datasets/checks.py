"""Check a config's data roots before a run, with the layout each one needs.

MMSeg and MMPretrain report a missing ADE20K or ImageNet folder as
``[Errno 2] No such file or directory: 'data/ade/.../images/training'``
from deep inside the dataloader build. :func:`check_data_roots` checks the
roots a run will read first and names the config key, the value and the
layout that is expected, including how to write a small ADE20K-layout
dataset of Fashion-MNIST scenes
(``tools/dataset_converters/make_fmnist_scenes.py``) where ADE20K cannot be
downloaded.
"""
import os.path as osp
from typing import Iterator, Sequence, Tuple

ADE20K_LAYOUT = ('a folder in the ADE20K layout (images/{training,'
                 'validation}/*.jpg, annotations/{training,validation}/*.png'
                 ', labels 0 = other): ADEChallengeData2016, or a small one '
                 'of Fashion-MNIST scenes written by `python tools/'
                 'dataset_converters/make_fmnist_scenes.py DIR` (then also '
                 'set model.decode_head.num_classes=10 and '
                 'model.auxiliary_head.num_classes=10)')
IMAGENET_LAYOUT = ('a folder in MMPretrain\'s ImageNet layout (train/ and '
                   'val/ image folders, optionally meta/{train,val}.txt '
                   'with "path label" lines)')
RUN_KEYS = {
    'train': ('train_dataloader', 'val_dataloader'),
    'test': ('test_dataloader', ),
}


def _datasets(cfg, where: str) -> Iterator[Tuple[str, dict]]:
    """Every dataset config below ``cfg``, wrappers included."""
    if not isinstance(cfg, dict):
        return
    yield where, cfg
    if isinstance(cfg.get('dataset'), dict):
        yield from _datasets(cfg['dataset'], f'{where}.dataset')
    for i, inner in enumerate(cfg.get('datasets') or []):
        yield from _datasets(inner, f'{where}.datasets.{i}')


def _layout(dataset: dict) -> str:
    kind = str(dataset.get('type', ''))
    prefix = dataset.get('data_prefix')
    if kind.endswith('ADE20KDataset') or (isinstance(prefix, dict)
                                          and 'seg_map_path' in prefix):
        return ADE20K_LAYOUT
    if kind.endswith('ImageNet'):
        return IMAGENET_LAYOUT
    return f'the folder that {kind or "the dataset"} reads'


def _expected_subfolders(dataset: dict) -> Sequence[str]:
    prefix = dataset.get('data_prefix')
    if isinstance(prefix, dict):
        return [p for p in prefix.values() if isinstance(p, str) and p]
    if isinstance(prefix, str) and prefix:
        return [prefix]
    split = dataset.get('split')
    if (str(dataset.get('type', '')).endswith('ImageNet')
            and isinstance(split, str) and split
            and not dataset.get('ann_file')):
        return [split]  # MMPretrain's ImageNet: data_root/<split>/
    return []


def check_data_roots(cfg, run: str = 'train') -> None:
    """Fail early, and clearly, when a dataset folder of the run is missing.

    Local roots only: a URI (``s3://...``) or an empty root is left to the
    dataset.

    Args:
        cfg (Config | dict): The full config.
        run (str): ``'train'`` (train and val dataloaders; val is skipped
            when ``val_dataloader`` is None) or ``'test'``.
            Defaults to 'train'.

    Raises:
        FileNotFoundError: Naming the key (``train_dataloader.dataset.
            data_root``), its value and the layout the dataset expects.
    """
    if run not in RUN_KEYS:
        raise ValueError(f'check_data_roots: run={run!r}; allowed: '
                         f'{sorted(RUN_KEYS)}.')
    for key in RUN_KEYS[run]:
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        for where, dataset in _datasets(loader.get('dataset'),
                                        f'{key}.dataset'):
            root = dataset.get('data_root')
            if not isinstance(root, str) or not root or '://' in root:
                continue
            local = osp.expanduser(root)
            hint = (f'Allowed: {_layout(dataset)}. Set it with '
                    f'--cfg-options {where}.data_root=DIR.')
            if not osp.isdir(local):
                raise FileNotFoundError(
                    f'{where}.data_root={root!r}: no such folder. {hint}')
            missing = [
                sub for sub in _expected_subfolders(dataset)
                if not osp.isdir(osp.join(local, sub))
            ]
            if missing:
                raise FileNotFoundError(
                    f'{where}.data_root={root!r} has no '
                    f'{", ".join(s + "/" for s in missing)} (from its '
                    f'data_prefix / split). {hint}')
