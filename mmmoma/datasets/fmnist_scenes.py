"""Fashion-MNIST scenes: a small semantic-segmentation set in ADE20K's layout.

ADE20K cannot be downloaded everywhere. :func:`make_scenes` composes scenes
from real Fashion-MNIST photos: a few clothing items, scaled, tinted and
flipped, on a cluttered colour canvas, with their pixel masks as labels. The
result has ADEChallengeData2016's exact folders, names and label
convention, so the ADE20K configs run on it with only the data root and
number of classes changed::

    OUT/images/training/ADE_train_00000001.jpg
    OUT/annotations/training/ADE_train_00000001.png   (uint8 label map)
    OUT/images/validation/ADE_val_00000001.jpg
    OUT/annotations/validation/ADE_val_00000001.png
    OUT/meta.json, OUT/README.md                      (class names, recipe)

Label 0 is background / other (ignored, as ``reduce_zero_label=True`` in
MMSeg's ``ADE20KDataset``); label ``k`` in 1..10 is Fashion-MNIST class
``k - 1``. Training scenes use the train split's items, validation scenes the
t10k split's. The output is a function of the arguments and ``seed``.
The command line is ``tools/dataset_converters/make_fmnist_scenes.py``.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from .fashion_mnist import (DEFAULT_ROOT, IMAGE_MAGIC, LABEL_MAGIC, idx_path,
                            read_idx)

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
           'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
# ADE20K's split names, file name stems and source split of the items.
SPLITS = (('training', 'ADE_train', 'train'), ('validation', 'ADE_val',
                                               't10k'))
# An item pixel belongs to its mask above this fraction of full intensity.
MASK_THRESHOLD = 0.2


def load_items(root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (N, 28, 28) and labels (N, ) of one split."""
    paths = [idx_path(root, f'{split}-{kind}-ubyte')
             for kind in ('images-idx3', 'labels-idx1')]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f'--fmnist-root={root!r}: {", ".join(missing)} not found. '
            'Allowed: a folder with the Fashion-MNIST idx files '
            '({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]); '
            '`apt-get install dataset-fashion-mnist` puts them in '
            f'{DEFAULT_ROOT}.')
    images = read_idx(paths[0], IMAGE_MAGIC)
    labels = read_idx(paths[1], LABEL_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f'--fmnist-root={root!r}: {paths[0]} and '
                         f'{paths[1]} do not match.')
    return images, labels


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered canvas: colour gradient, blobs and stripes, (H, W, 3)."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    start, end = rng.uniform(0, 255, size=(2, 3))
    t = (rng.uniform() * x + rng.uniform() * y)[..., None]
    canvas = start + (end - start) * t / max(float(t.max()), 1e-6)
    for _ in range(rng.integers(2, 6)):  # soft blobs of another colour
        cy, cx = rng.uniform(0, 1, size=2)
        radius = rng.uniform(0.05, 0.3)
        weight = np.exp(-((y - cy)**2 + (x - cx)**2) / (2 * radius**2))
        canvas += weight[..., None] * (rng.uniform(0, 255, 3) - canvas) * 0.7
    period = rng.uniform(0.05, 0.25)  # faint stripes: texture, not items
    angle = rng.uniform(0, np.pi)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    canvas += 12 * np.sin(2 * np.pi * phase)[..., None]
    canvas += rng.normal(0, 4, canvas.shape)
    return canvas.clip(0, 255)


def compose_scene(rng: np.random.Generator, images: np.ndarray,
                  labels: np.ndarray, size: int,
                  num_items: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Paste random items on a canvas; later items occlude earlier ones.

    Args:
        rng (np.random.Generator): The random stream.
        images (np.ndarray): Items, (N, 28, 28) uint8.
        labels (np.ndarray): Their classes, (N, ) in 0..9.
        size (int): Side of the square scene.
        num_items (tuple[int, int]): Inclusive range of items per scene.

    Returns:
        tuple: The image (H, W, 3) uint8 RGB and the label map (H, W)
        uint8, 0 for background and ``class + 1`` for an item pixel.
    """
    canvas = background(rng, size)
    label_map = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(num_items[0], num_items[1] + 1)):
        index = rng.integers(len(images))
        side = int(round(size * rng.uniform(0.2, 0.5)))
        item = Image.fromarray(images[index]).resize((side, side),
                                                     Image.BILINEAR)
        alpha = np.asarray(item, dtype=np.float64) / 255  # (s, s)
        if rng.uniform() < 0.5:
            alpha = alpha[:, ::-1]
        top, left = rng.integers(0, size - side + 1, size=2)
        color = rng.uniform(40, 255, size=3)
        window = canvas[top:top + side, left:left + side]
        window[:] = window * (1 - alpha[..., None]) + color * alpha[..., None]
        mask = alpha > MASK_THRESHOLD
        label_map[top:top + side, left:left + side][mask] = labels[index] + 1
    return canvas.round().astype(np.uint8), label_map


def write_split(out: str, folder: str, stem: str, rng: np.random.Generator,
                images: np.ndarray, labels: np.ndarray, num: int, size: int,
                num_items: Tuple[int, int]) -> List[int]:
    """Write ``num`` scenes of one split; return the pixel count per label."""
    img_dir = osp.join(out, 'images', folder)
    ann_dir = osp.join(out, 'annotations', folder)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    counts = np.zeros(len(CLASSES) + 1, dtype=np.int64)
    for i in range(1, num + 1):
        image, label_map = compose_scene(rng, images, labels, size,
                                         num_items)
        name = f'{stem}_{i:08d}'
        Image.fromarray(image).save(
            osp.join(img_dir, name + '.jpg'), quality=95)
        Image.fromarray(label_map).save(osp.join(ann_dir, name + '.png'))
        counts += np.bincount(label_map.ravel(), minlength=len(counts))
    return counts.tolist()


README = """# Fashion-MNIST scenes in the ADE20K layout

Generated by `tools/dataset_converters/make_fmnist_scenes.py` ({command}).
Real Fashion-MNIST items (train split for `training`, t10k for `validation`)
pasted on cluttered canvases, with their pixel masks as labels.

    images/{{training,validation}}/ADE_{{train,val}}_NNNNNNNN.jpg
    annotations/{{training,validation}}/ADE_{{train,val}}_NNNNNNNN.png

Label maps are uint8: 0 = background / other (ignored with
`reduce_zero_label=True`, as MMSeg's `ADE20KDataset` does), k = 1..10 =
Fashion-MNIST class k - 1 (`meta.json` lists the names). Train the ADE20K
recipe with these classes on it (the data root and the student at launch):

    CONFIG=upernet_vit-b16_moma-pre_8xb2-160k_fmnist-scenes-512x512.py
    python tools/train.py configs/seg/$CONFIG --cfg-options \\
        train_dataloader.dataset.data_root={out} \\
        val_dataloader.dataset.data_root={out} \\
        test_dataloader.dataset.data_root={out} \\
        model.backbone.init_cfg.checkpoint=MOMA_CKPT
"""


def make_scenes(out: str, fmnist_root: str = DEFAULT_ROOT,
                num_train: int = 2000, num_val: int = 500, size: int = 256,
                num_items: Tuple[int, int] = (2, 5), seed: int = 0,
                overwrite: bool = False,
                command: Optional[str] = None) -> dict:
    """Write the dataset to ``out`` (all or nothing) and return its meta.

    The scenes go to a temporary folder beside ``out``, renamed into place
    when complete. Error messages name the command-line flags.

    Args:
        out (str): The output folder (the data root).
        fmnist_root (str): The folder with the Fashion-MNIST idx files.
            Defaults to :data:`DEFAULT_ROOT`.
        num_train (int): Training scenes. Defaults to 2000.
        num_val (int): Validation scenes. Defaults to 500.
        size (int): Side of the square scenes, >= 32. Defaults to 256.
        num_items (tuple[int, int]): Inclusive range of items per scene.
            Defaults to (2, 5).
        seed (int): The random seed. Defaults to 0.
        overwrite (bool): Replace a non-empty ``out``. Defaults to False.
        command (str, optional): The command line, recorded in
            ``meta.json`` and ``README.md``. Defaults to None
            (``'make_scenes()'``).

    Returns:
        dict: What ``meta.json`` holds: classes, label values, recipe and
        per split ``num_images`` and ``pixels_per_label``.
    """
    for name, value, low in (('--num-train', num_train, 1),
                             ('--num-val', num_val, 1), ('--size', size, 32)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f'{name}={value!r}: allowed: an integer >= '
                             f'{low}.')
    lo, hi = num_items
    if not 1 <= lo <= hi:
        raise ValueError(f'--items={lo} {hi}: allowed: 1 <= MIN <= MAX.')
    out = check_out(out, overwrite)
    meta = dict(
        classes=list(CLASSES),
        label_values={'0': 'background / other (ignored)',
                      **{str(k + 1): c for k, c in enumerate(CLASSES)}},
        num_classes=len(CLASSES),
        reduce_zero_label=True,
        img_suffix='.jpg',
        seg_map_suffix='.png',
        size=size,
        items_per_scene=[lo, hi],
        seed=seed,
        source=osp.abspath(fmnist_root),
        command=command or 'make_scenes()',
        splits={})

    def write(tmp: str) -> None:
        for split_id, (folder, stem, source) in enumerate(SPLITS):
            images, labels = load_items(fmnist_root, source)
            num = num_train if folder == 'training' else num_val
            rng = np.random.default_rng([seed, split_id])
            counts = write_split(tmp, folder, stem, rng, images, labels, num,
                                 size, num_items)
            meta['splits'][folder] = dict(
                num_images=num, items_from=source, pixels_per_label=counts)
        with open(osp.join(tmp, 'README.md'), 'w') as f:
            f.write(README.format(command=meta['command'], out=out))

    write_atomically(out, meta, write)
    return meta


def check_out(out: str, overwrite: bool) -> str:
    """The absolute output folder; fails on a non-empty one unless
    ``overwrite``."""
    out = osp.abspath(osp.expanduser(out))
    if osp.exists(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f'output {out!r} exists and is not empty; '
                              'pass --overwrite to replace it.')
    return out


def write_atomically(out: str, meta: dict,
                     write: Callable[[str], None]) -> None:
    """Run ``write(tmp)`` on a temporary folder beside ``out``, add
    ``meta.json`` (``meta`` after ``write``), and rename it into place;
    nothing is left behind on failure."""
    parent = osp.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}-', dir=parent)
    try:
        write(tmp)
        with open(osp.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=2)
        if osp.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
