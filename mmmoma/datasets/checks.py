"""Check a config's data roots before a run, with the layout each one needs.

MMSeg and MMPretrain report a missing ADE20K or ImageNet folder as
``[Errno 2] No such file or directory: 'data/ade/.../images/training'``
from deep inside the dataloader build. :func:`check_data_roots` checks the
roots a run will read first and names the config key, the value and the
layout that is expected, including how to write a small ADE20K-layout
dataset of Fashion-MNIST scenes
(``tools/dataset_converters/make_fmnist_scenes.py``) where ADE20K cannot be
downloaded. An image-folder dataset whose folder holds no image fails there
too. Once the Runner has built a dataset, :func:`check_samples` fails on an
empty one and decodes its samples (all of a small one, such as the
composed scenes; the first few of a large one), so that an unreadable
image or label map is named before the first iteration, not from inside a
worker.
"""
import os
import os.path as osp
from typing import Iterator, Optional, Sequence, Tuple

from .checked_loading import DataFileError

ADE20K_LAYOUT = ('a folder in the ADE20K layout (images/{training,'
                 'validation}/*.jpg, annotations/{training,validation}/*.png'
                 ', labels 0 = other): ADEChallengeData2016, or a small one '
                 'of Fashion-MNIST scenes written by `python tools/'
                 'dataset_converters/make_fmnist_scenes.py DIR` (with '
                 'configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_fmnist-'
                 'scenes-512x512.py, or a config of that shape)')
IMAGENET_LAYOUT = ('a folder in MMPretrain\'s ImageNet layout (train/ and '
                   'val/ image folders, optionally meta/{train,val}.txt '
                   'with "path label" lines)')
# MMPretrain's CustomDataset (and so ImageNet) without an ann_file lists
# these files under its image folder.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')
#: Datasets of at most this many samples are decoded whole before a run:
#: the composed Fashion-MNIST scenes (2000 training scenes at most).
FULL_CHECK_MAX = 2000
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


def _scanned_folder(dataset: dict, root: str) -> Optional[str]:
    """The folder an image-folder dataset lists, or None for other kinds."""
    kind = str(dataset.get('type', ''))
    if not kind.endswith(('CustomDataset', 'ImageNet')) or dataset.get(
            'ann_file'):
        return None
    prefix = dataset.get('data_prefix')
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    if not prefix and kind.endswith('ImageNet'):
        prefix = dataset.get('split') or ''
    return osp.join(root, prefix) if isinstance(prefix, str) else root


def _has_image(folder: str, extensions: Sequence[str]) -> bool:
    """Whether any file below ``folder`` has one of ``extensions``."""
    extensions = tuple(e.lower() for e in extensions)
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(extensions) for f in files):
            return True
    return False


def _is_blank(path: str) -> bool:
    """Whether a text file holds nothing but whitespace."""
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 16), b''):
            if chunk.strip():
                return False
    return True


def _check_ann_file(dataset: dict, where: str, root: str,
                    local: str) -> None:
    ann = dataset.get('ann_file')
    if not isinstance(ann, str) or not ann or '://' in ann:
        return
    path = osp.join(local, osp.expanduser(ann))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{where}.ann_file={ann!r}: no such file under data_root='
            f'{root!r}. Allowed: an existing annotation file, relative to '
            f'data_root or absolute; set it with --cfg-options '
            f'{where}.ann_file=FILE.')
    if _is_blank(path):
        raise ValueError(
            f'{where}: {dataset.get("type")} with data_root={root!r} has no '
            f'samples: its ann_file={ann!r} is empty. Allowed: a dataset with '
            'at least one sample, an annotation file listing them.')
    _check_ann_lines(dataset, where, ann, path)


def _check_ann_lines(dataset: dict, where: str, ann: str, path: str) -> None:
    """Fail on an annotation list that its dataset cannot parse.

    Every list must be UTF-8 text; MMPretrain's labeled ``CustomDataset``
    and ``ImageNet`` read each line as ``path label`` with an integer label
    and fail on the first other one without naming the file or the line.
    One pass over the text, no file is opened per sample.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        raise ValueError(
            f'{where}.ann_file={ann!r} ({path}): line {line} is not UTF-8 '
            f'text (byte {raw[err.start:err.start + 1]!r} at offset '
            f'{err.start}); the file is damaged or not an annotation list. '
            'Allowed: a text file with one sample per line.') from err
    kind = str(dataset.get('type', ''))
    labeled = kind.endswith('ImageNet') or (kind.endswith('CustomDataset')
                                            and dataset.get('with_label',
                                                            True))
    if not labeled:
        return
    for number, line in enumerate(text.split('\n'), start=1):
        if not line.strip() and number == text.count('\n') + 1:
            break  # the end of the last line
        fields = line.strip().rsplit(' ', 1)
        if len(fields) != 2 or not fields[1].lstrip('-').isdigit():
            raise ValueError(
                f'{where}.ann_file={ann!r} ({path}): line {number} is '
                f'{line!r}, which {kind} cannot read. Allowed: "path label" '
                'lines with an integer label (with_label=True), or set '
                f'{where}.with_label=False for a list of paths.')


def check_data_roots(cfg, run: str = 'train') -> None:
    """Fail early, and clearly, when a dataset folder of the run is missing.

    Local roots only: a URI (``s3://...``) or an empty root is left to the
    dataset. A given ``ann_file`` must exist and not be empty; an
    image-folder dataset (``CustomDataset``, ``ImageNet`` without
    ``ann_file``) must hold at least one image.

    Args:
        cfg (Config | dict): The full config.
        run (str): ``'train'`` (train and val dataloaders; val is skipped
            when ``val_dataloader`` is None) or ``'test'``.
            Defaults to 'train'.

    Raises:
        FileNotFoundError: Naming the key (``train_dataloader.dataset.
            data_root``), its value and the layout the dataset expects.
        ValueError: When the dataset's ``ann_file`` is empty.
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
            _check_ann_file(dataset, where, root, local)
            folder = _scanned_folder(dataset, local)
            extensions = dataset.get('extensions') or IMAGE_EXTENSIONS
            if folder is not None and not _has_image(folder, extensions):
                raise FileNotFoundError(
                    f'{where}.data_root={root!r}: {dataset["type"]} has no '
                    f'samples there: no {"/".join(extensions)} file under '
                    f'{folder}. {hint}')


def _leaf_datasets(dataset, where: str) -> Iterator[Tuple[str, object]]:
    """The datasets that hold samples, below wrappers such as RepeatDataset."""
    inner = getattr(dataset, 'datasets', None)
    if isinstance(inner, (list, tuple)):
        for i, item in enumerate(inner):
            yield from _leaf_datasets(item, f'{where}.datasets.{i}')
    elif hasattr(dataset, 'dataset') and not hasattr(dataset, 'pipeline'):
        yield from _leaf_datasets(dataset.dataset, f'{where}.dataset')
    else:
        yield where, dataset


def _loader_name(transform) -> Optional[str]:
    """``'LoadImageFromFile'`` for a loading transform (a checked one
    included), None for any other."""
    for cls in type(transform).__mro__:
        if cls.__name__.startswith('Load'):
            return cls.__name__
    return None


def check_samples(dataset,
                  where: str,
                  num: int = 4,
                  full_check_max: int = FULL_CHECK_MAX) -> None:
    """Fail before training on an empty dataset or an undecodable sample.

    Only the loading transforms (``Load*``, and their checked versions of
    :mod:`mmmoma.datasets.checked_loading`) of each pipeline run: they read
    files and draw no random numbers, so the run that follows is unchanged.
    A dataset of at most ``full_check_max`` samples (the composed
    Fashion-MNIST scenes) is decoded whole, a larger one on its first
    ``num`` samples; there a bad file further down is named by the checked
    transforms when it is read.

    Args:
        dataset: A built dataset (wrappers are looked through).
        where (str): Its config key, e.g. ``'train_dataloader.dataset'``.
        num (int): How many samples of a larger dataset to decode.
            Defaults to 4.
        full_check_max (int): The most samples a dataset may have to be
            decoded whole. Defaults to :data:`FULL_CHECK_MAX`.

    Raises:
        ValueError: Naming the key, the data root and the dataset type for
            an empty dataset, or the file that cannot be decoded.
    """
    for key, leaf in _leaf_datasets(dataset, where):
        kind = type(leaf).__name__
        root = getattr(leaf, 'data_root', None)
        if len(leaf) == 0:
            raise ValueError(
                f'{key}: {kind} with data_root={root!r} has no samples. '
                'Allowed: a dataset with at least one sample; check '
                f'{key}.data_root, data_prefix and ann_file.')
        loads = [
            t for t in getattr(getattr(leaf, 'pipeline', None), 'transforms',
                               []) if _loader_name(t) is not None
        ]
        if not loads:
            continue
        checked = len(leaf) if len(leaf) <= full_check_max else num
        for idx in range(min(checked, len(leaf))):
            info = leaf.get_data_info(idx)
            source = info.get('img_path') or info.get('seg_map_path')
            try:
                for transform in loads:
                    info = transform(info)
                    if info is None:  # ignore_empty=True skips the sample
                        break
            except DataFileError as err:  # names the file already
                raise DataFileError(
                    f'{key}.data_root={root!r}: sample {idx} of {kind} '
                    f'({len(leaf)} samples): {err}') from err
            except Exception as err:  # noqa: BLE001 - re-raised with the file
                names = ', '.join(_loader_name(t) for t in loads)
                raise ValueError(
                    f'{key}.data_root={root!r}: sample {idx} of {kind}, '
                    f'{source!r}, cannot be decoded ({type(err).__name__}: '
                    f'{err}). Allowed: files that {names} can read (JPEG, '
                    'PNG, BMP, ...); replace or remove the file.') from err
