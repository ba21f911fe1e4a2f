"""Fashion-MNIST mosaics: the segmentation-v2 transfer set, in MMSeg's layout.

The composed scenes of :mod:`.fmnist_scenes` (tinted, rescaled items on
coloured clutter) are far from what the study's models were pretrained on
(28x28 gray Fashion-MNIST, 4 px patches): every model segments them at
chance. A mosaic keeps the pretraining images as they were: a grid of
cells, each a Fashion-MNIST item at its native 28x28 scale on black, some
cells left empty, and the item's pixels above a threshold labelled with its
class. :func:`make_mosaics` writes them in MMSeg's plain layout and
:class:`FashionMNISTMosaics` reads them with the garment names::

    OUT/img_dir/{train,val}/mosaic_NNNNNNNN.png   (RGB, the item gray)
    OUT/ann_dir/{train,val}/mosaic_NNNNNNNN.png   (uint8 label map)
    OUT/meta.json, OUT/README.md                  (class names, recipe)

Label 0 is background, a class of its own (black, or an item pixel at or
below the threshold); label ``k`` in 1..10 is Fashion-MNIST class ``k - 1``.
Training mosaics use the train split's items, validation mosaics the t10k
split's. The output is a function of the arguments and ``seed``. The
command line is ``tools/dataset_converters/make_fmnist_scenes.py
--mosaics``.
"""
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

from .fashion_mnist import DEFAULT_ROOT
from .fmnist_scenes import CLASSES, check_out, load_items, write_atomically

#: Label 0 then the ten garments, the label map's values in order.
MOSAIC_CLASSES = ('background', ) + CLASSES
#: MMSeg's split folders and the Fashion-MNIST split their items come from.
MOSAIC_SPLITS = (('train', 'train'), ('val', 't10k'))
ITEM_SIZE = 28  # Fashion-MNIST's side


@DATASETS.register_module()
class FashionMNISTMosaics(BaseSegDataset):
    """Fashion-MNIST mosaics (:func:`make_mosaics`) for MMSegmentation.

    MMSeg's ``BaseSegDataset`` on the ``img_dir`` / ``ann_dir`` layout with
    the mosaics' 11 classes (background and the ten garments), PNG images
    and label maps, and label 0 kept as the background class
    (``reduce_zero_label=False``), so that the per-class table of
    ``IoUMetric`` names them.

    Args:
        img_suffix (str): Defaults to '.png'.
        seg_map_suffix (str): Defaults to '.png'.
        reduce_zero_label (bool): Defaults to False (0 is background, a
            class).
        **kwargs: The other arguments of ``BaseSegDataset`` (``data_root``,
            ``data_prefix``, ``pipeline``, ...).
    """
    METAINFO = dict(
        classes=MOSAIC_CLASSES,
        palette=[[0, 0, 0], [220, 20, 60], [119, 11, 32], [0, 0, 142],
                 [0, 0, 230], [106, 0, 228], [0, 60, 100], [0, 80, 100],
                 [0, 0, 70], [250, 170, 30], [100, 170, 30]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)


def compose_mosaic(rng: np.random.Generator, images: np.ndarray,
                   labels: np.ndarray, cells: int, cell_size: int,
                   empty_prob: float,
                   threshold: int) -> Tuple[np.ndarray, np.ndarray]:
    """A ``cells`` x ``cells`` grid of random items on black.

    Args:
        rng (np.random.Generator): The random stream.
        images (np.ndarray): Items, (N, 28, 28) uint8.
        labels (np.ndarray): Their classes, (N, ) in 0..9.
        cells (int): Cells per side.
        cell_size (int): Side of a cell; an item of another size is resized
            to it (bilinear) before the threshold.
        empty_prob (float): Probability that a cell stays empty.
        threshold (int): An item pixel is labelled with the item's class
            when its value (0..255) is above this, background otherwise.

    Returns:
        tuple: The image (H, W, 3) uint8 RGB, the item gray in all three
        channels, and the label map (H, W) uint8, 0 for background and
        ``class + 1`` for an item pixel; ``H = W = cells * cell_size``.
    """
    side = cells * cell_size
    gray = np.zeros((side, side), dtype=np.uint8)
    label_map = np.zeros((side, side), dtype=np.uint8)
    for row in range(cells):
        for col in range(cells):
            # both draws always happen: a cell's item does not depend on
            # whether an earlier cell was empty
            empty = rng.uniform() < empty_prob
            index = rng.integers(len(images))
            if empty:
                continue
            item = images[index]
            if item.shape != (cell_size, cell_size):
                item = np.asarray(
                    Image.fromarray(item).resize((cell_size, cell_size),
                                                 Image.BILINEAR))
            window = (slice(row * cell_size, (row + 1) * cell_size),
                      slice(col * cell_size, (col + 1) * cell_size))
            gray[window] = item
            label_map[window] = np.where(item > threshold,
                                         labels[index] + 1, 0)
    return np.repeat(gray[..., None], 3, axis=2), label_map


def write_mosaics(out: str, split: str, rng: np.random.Generator,
                  images: np.ndarray, labels: np.ndarray, num: int,
                  **recipe) -> List[int]:
    """Write ``num`` mosaics of one split; return the pixel count per
    label. ``recipe``: the keyword arguments of :func:`compose_mosaic`
    after ``labels``."""
    img_dir = osp.join(out, 'img_dir', split)
    ann_dir = osp.join(out, 'ann_dir', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    counts = np.zeros(len(MOSAIC_CLASSES), dtype=np.int64)
    for i in range(1, num + 1):
        image, label_map = compose_mosaic(rng, images, labels, **recipe)
        name = f'mosaic_{i:08d}.png'
        Image.fromarray(image).save(osp.join(img_dir, name))
        Image.fromarray(label_map).save(osp.join(ann_dir, name))
        counts += np.bincount(label_map.ravel(), minlength=len(counts))
    return counts.tolist()


README = """# Fashion-MNIST mosaics in MMSeg's layout

Generated by `tools/dataset_converters/make_fmnist_scenes.py --mosaics`
({command}). {cells}x{cells} cells of {cell}x{cell} px, each a real
Fashion-MNIST item on black (train split for `train`, t10k for `val`) or,
with probability {empty_prob}, empty; an item pixel above {threshold} (of
255) is labelled with the item's class.

    img_dir/{{train,val}}/mosaic_NNNNNNNN.png
    ann_dir/{{train,val}}/mosaic_NNNNNNNN.png

Label maps are uint8: 0 = background (a class), k = 1..10 = Fashion-MNIST
class k - 1 (`meta.json` lists the names). MMSeg reads them with
`FashionMNISTMosaics`, e.g.:

    CONFIG=configs/study/upernet_vit-tiny-p4_moma-pre_1xb16-300i_\
fmnist-mosaics-84x84.py
    python tools/train.py $CONFIG --cfg-options \\
        train_dataloader.dataset.data_root={out} \\
        val_dataloader.dataset.data_root={out} \\
        test_dataloader.dataset.data_root={out} \\
        model.backbone.init_cfg.checkpoint=CKPT
"""


def make_mosaics(out: str, fmnist_root: str = DEFAULT_ROOT,
                 num_train: int = 500, num_val: int = 200, size: int = 84,
                 cells: int = 3, empty_prob: float = 0.25,
                 threshold: int = 30, seed: int = 0, overwrite: bool = False,
                 command: Optional[str] = None) -> dict:
    """Write the mosaics to ``out`` (all or nothing) and return their meta.

    The defaults are the setting under which a probe first separated the
    study's models (MOMA student 42.8 mIoU, teachers and random init about
    29): 84 = 3 x 28, so every item keeps its native scale and the 4 px
    patches of pretraining see the same strokes; a quarter of the cells
    empty, so that a model must find the items and not only classify
    cells; threshold 30 (12% of full intensity), so that the label follows
    the garment's silhouette and leaves out the near-black backdrop and
    faint anti-aliased rim of the photo; 500 train and 200 validation
    mosaics (about 3,400 and 1,350 items), the probe's sizes.

    Args:
        out (str): The output folder (the data root).
        fmnist_root (str): The folder with the Fashion-MNIST idx files.
            Defaults to :data:`DEFAULT_ROOT`.
        num_train (int): Training mosaics. Defaults to 500.
        num_val (int): Validation mosaics. Defaults to 200.
        size (int): Side of the square mosaics, a multiple of ``cells`` with
            cells of at least 8 px. Defaults to 84 (native 28 px cells).
        cells (int): Cells per side. Defaults to 3.
        empty_prob (float): Probability that a cell is empty, in [0, 1).
            Defaults to 0.25.
        threshold (int): Label an item pixel above this value (0..254).
            Defaults to 30.
        seed (int): The random seed. Defaults to 0.
        overwrite (bool): Replace a non-empty ``out``. Defaults to False.
        command (str, optional): The command line, recorded in
            ``meta.json`` and ``README.md``. Defaults to None
            (``'make_mosaics()'``).

    Returns:
        dict: What ``meta.json`` holds: classes, label values, recipe and
        per split ``num_images`` and ``pixels_per_label``.
    """
    for name, value, low in (('--num-train', num_train, 1),
                             ('--num-val', num_val, 1), ('--cells', cells, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f'{name}={value!r}: allowed: an integer >= '
                             f'{low}.')
    if (not isinstance(size, int) or size % cells
            or size // cells < 8):
        raise ValueError(f'--size={size!r}: allowed: a multiple of --cells='
                         f'{cells} with cells of at least 8 px (84 for '
                         '3 native 28 px cells).')
    if not 0 <= empty_prob < 1:
        raise ValueError(f'--empty-prob={empty_prob!r}: allowed: a number '
                         'in [0, 1).')
    if not isinstance(threshold, int) or not 0 <= threshold < 255:
        raise ValueError(f'--threshold={threshold!r}: allowed: an integer '
                         'in 0..254.')
    out = check_out(out, overwrite)
    recipe = dict(cells=cells, cell_size=size // cells,
                  empty_prob=empty_prob, threshold=threshold)
    meta = dict(
        classes=list(MOSAIC_CLASSES),
        label_values={str(k): c for k, c in enumerate(MOSAIC_CLASSES)},
        num_classes=len(MOSAIC_CLASSES),
        reduce_zero_label=False,
        img_suffix='.png',
        seg_map_suffix='.png',
        size=size,
        **recipe,
        seed=seed,
        source=osp.abspath(fmnist_root),
        command=command or 'make_mosaics()',
        splits={})

    def write(tmp: str) -> None:
        for split_id, (split, source) in enumerate(MOSAIC_SPLITS):
            images, labels = load_items(fmnist_root, source)
            num = num_train if split == 'train' else num_val
            # its own stream per split (as the scenes): the validation
            # mosaics do not change with num_train
            rng = np.random.default_rng([seed, split_id])
            counts = write_mosaics(tmp, split, rng, images, labels, num,
                                   **recipe)
            meta['splits'][split] = dict(
                num_images=num, items_from=source, pixels_per_label=counts)
        with open(osp.join(tmp, 'README.md'), 'w') as f:
            f.write(README.format(command=meta['command'], out=out,
                                  cell=recipe['cell_size'], **recipe))

    write_atomically(out, meta, write)
    return meta
