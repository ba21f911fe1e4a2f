"""Feature maps of a MOMA model: each teacher's and the student's patch
features as PCA colours and as cosine similarity to one patch
(``tools/analysis_tools/visualize_features.py``).

For every model (each teacher, then the student) the patch features of all
images are projected on their first 3 principal components, fitted jointly
over the images, so that a colour means the same across images; each
component is min-max scaled to [0, 1] over all images and shown as R, G, B.
The teachers' features are the targets the student is trained on
(:meth:`FrozenTeachers.targets`: the distilled layer, on the student's patch
grid); the student's are its backbone's last block on the whole image.
"""
import argparse
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

#: Title of the student's column; the teachers' are their names.
STUDENT = 'student'


def principal_components(x: torch.Tensor, num: int = 3) -> torch.Tensor:
    """Project rows on their first ``num`` principal components.

    Each component's sign is chosen so that its largest loading (by
    absolute value) is positive, which makes the result deterministic.

    Args:
        x (torch.Tensor): (M, C) features, one row per token.
        num (int): Components kept. Defaults to 3.

    Returns:
        torch.Tensor: (M, num) float64 projections of the centred rows,
        largest variance first.
    """
    if x.dim() != 2 or x.shape[0] < 2 or x.shape[1] < num:
        raise ValueError(
            f'principal_components: features of shape {tuple(x.shape)}; '
            f'allowed: (M, C) with M >= 2 tokens and C >= {num} channels.')
    x = x.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)  # vh: (K, C)
    vh = vh[:num]
    signs = torch.sign(vh.gather(1, vh.abs().argmax(dim=1, keepdim=True)))
    return x @ (vh * signs).T


def pca_rgb(features: torch.Tensor) -> torch.Tensor:
    """PCA colours of patch features, fitted jointly over the images.

    Args:
        features (torch.Tensor): (N, L, C) patch features of N images.

    Returns:
        torch.Tensor: (N, L, 3) in [0, 1]: the first 3 principal components
        of all N * L tokens, each min-max scaled over all of them (a
        constant component is 0).
    """
    N, L, C = features.shape
    proj = principal_components(features.reshape(N * L, C))  # (N * L, 3)
    low, high = proj.min(dim=0).values, proj.max(dim=0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return ((proj - low) / span).reshape(N, L, 3).float()


def cosine_map(features: torch.Tensor,
               index: int,
               center: bool = True) -> torch.Tensor:
    """Cosine similarity of every patch to patch ``index`` of its image.

    Args:
        features (torch.Tensor): (N, L, C) patch features.
        index (int): The reference patch, row-major on the patch grid.
        center (bool): Subtract first the mean feature of all N * L patches
            (as the PCA does): ViT features share a large mean direction
            that puts every raw cosine near 1. Defaults to True.

    Returns:
        torch.Tensor: (N, L) in [-1, 1].
    """
    if center:
        features = features - features.mean(dim=(0, 1), keepdim=True)
    ref = features[:, index:index + 1]  # (N, 1, C)
    return torch.nn.functional.cosine_similarity(features, ref, dim=-1)


def load_model(config: str,
               checkpoint: str,
               cfg_options: Optional[dict] = None,
               device: str = 'cpu') -> torch.nn.Module:
    """Build a config's ``MomaAlgorithm`` and load a checkpoint strictly.

    The teachers come from the checkpoint when it holds them
    (``save_teachers=True``), else from their ``init_cfg`` (loaded strictly
    by ``init_weights``).

    Args:
        config (str): A MOMA config.
        checkpoint (str): A checkpoint of it (MMEngine's, or the weights-only
            one ``tools/demo.py`` publishes), read by
            :func:`mmmoma.fileio.load_checkpoint`.
        cfg_options (dict, optional): Merged into the config first, e.g.
            the teachers' ``init_cfg.checkpoint``. Defaults to None.
        device (str): Where the model runs. Defaults to ``'cpu'``.

    Returns:
        nn.Module: The model in eval mode.
    """
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    from mmpretrain.registry import MODELS

    from mmmoma.fileio import load_checkpoint
    from mmmoma.models import MomaAlgorithm

    if not osp.isfile(config):
        raise FileNotFoundError(
            f'visualize_features: config={config!r} does not exist. Allowed: '
            'a MOMA config (.py), e.g. '
            'configs/moma/moma_vit-b_moco-mae_100e.py.')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'visualize_features: checkpoint={checkpoint!r} does not exist.')
    state = load_checkpoint(checkpoint, 'checkpoint')
    keys = state.get('state_dict', state)
    for name, teacher in cfg.model.get('teachers', {}).items():
        in_checkpoint = any(k.startswith(f'teachers.{name}.') for k in keys)
        if not in_checkpoint and not teacher.get('init_cfg'):
            raise ValueError(
                f'visualize_features: teacher {name!r} has no weights: '
                f'model.teachers.{name}.init_cfg is None in {config} and '
                f'{checkpoint} holds no teachers.{name}.* keys. Pass its '
                f'checkpoint with --cfg-options model.teachers.{name}.'
                f'init_cfg._delete_=True model.teachers.{name}.init_cfg.'
                f'type=Pretrained model.teachers.{name}.init_cfg.'
                f'checkpoint=PATH model.teachers.{name}.init_cfg.'
                'prefix=backbone. (or give the config MMEngine saved in the '
                'run\'s work dir).')
    scope = cfg.get('default_scope', 'mmpretrain')
    with DefaultScope.overwrite_default_scope(scope):
        model_cfg = cfg.model.copy()
        if cfg.get('data_preprocessor') is not None:
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(model_cfg)
    if not isinstance(model, MomaAlgorithm):
        raise ValueError(
            f'visualize_features: {config} builds a {type(model).__name__}; '
            'allowed: a MomaAlgorithm config.')
    model.init_weights()  # the teachers' init_cfg
    _load_checkpoint_to_model(
        model, state, strict=True, logger=MMLogger.get_current_instance())
    return model.to(device).eval()


def read_images(files: Sequence[str], size: Tuple[int, int]) -> np.ndarray:
    """Images at the model's input size: the shorter side resized to it,
    then the centre cropped (all of a square image is kept).

    Args:
        files (Sequence[str]): Image files.
        size (tuple[int, int]): (H, W), the model's input size.

    Returns:
        np.ndarray: (N, H, W, 3) uint8, BGR as ``LoadImageFromFile`` gives.
    """
    import cv2
    import mmcv
    out = []
    for path in files:
        img = mmcv.imread(path, flag='color')  # (h, w, 3) BGR
        if img is None:
            raise ValueError(f'--images: cannot read {path} as an image.')
        scale = max(size[0] / img.shape[0], size[1] / img.shape[1])
        h = max(size[0], round(img.shape[0] * scale))
        w = max(size[1], round(img.shape[1] * scale))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA
                         if scale < 1 else cv2.INTER_CUBIC)
        top, left = (h - size[0]) // 2, (w - size[1]) // 2
        out.append(img[top:top + size[0], left:left + size[1]])
    return np.stack(out)


@torch.no_grad()
def patch_features(model: torch.nn.Module, images: np.ndarray,
                   batch_size: int = 16) -> Dict[str, torch.Tensor]:
    """Each teacher's and the student's patch features of ``images``.

    Args:
        model (nn.Module): A ``MomaAlgorithm``.
        images (np.ndarray): (N, H, W, 3) uint8 BGR at the model's size.
        batch_size (int): Images per forward pass. Defaults to 16.

    Returns:
        dict[str, torch.Tensor]: ``{teacher name or 'student': (N, L, C)}``
        float32 on the CPU, class token dropped.
    """
    from mmmoma.models.utils import vit_forward_tokens
    if STUDENT in model.teachers:
        raise ValueError(f'visualize_features: a teacher is named '
                         f'{STUDENT!r}, the name of the student\'s maps; '
                         'rename it in model.teachers.')
    device = next(model.parameters()).device
    feats: Dict[str, List[torch.Tensor]] = {}
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size]).to(device)
        data = model.data_preprocessor(
            dict(inputs=batch.permute(0, 3, 1, 2).contiguous(),
                 data_samples=None))
        x = data['inputs']
        x = x[0] if isinstance(x, (list, tuple)) else x  # (B, 3, H, W)
        for name in model.teachers:
            feats.setdefault(name, []).append(
                model.teachers.targets(name, x)[:, 1:].float().cpu())
        feats.setdefault(STUDENT, []).append(
            vit_forward_tokens(model.backbone, x)[:, 1:].float().cpu())
    return {name: torch.cat(parts) for name, parts in feats.items()}


def _show_input(ax, image: np.ndarray, grid: Tuple[int, int],
                patch: Optional[Tuple[int, int]] = None) -> None:
    """The RGB input; with ``patch``, that patch outlined."""
    from matplotlib.patches import Rectangle
    H, W = image.shape[:2]
    ax.imshow(image[..., ::-1], extent=(0, W, H, 0))
    if patch is not None:
        ph, pw = H / grid[0], W / grid[1]
        ax.add_patch(Rectangle((patch[1] * pw, patch[0] * ph), pw, ph,
                               fill=False, edgecolor='red', linewidth=1.5))


def _show_maps(axes, rgb: torch.Tensor, cos: torch.Tensor,
               grid: Tuple[int, int]) -> None:
    """One model's PCA colours and cosine map of one image."""
    axes[0].imshow(rgb.reshape(*grid, 3).numpy(), interpolation='nearest')
    axes[1].imshow(cos.reshape(grid).numpy(), cmap='coolwarm', vmin=-1,
                   vmax=1, interpolation='nearest')


def visualize_features(model: torch.nn.Module,
                       files: Sequence[str],
                       out_dir: str,
                       patch: Optional[Tuple[int, int]] = None,
                       center: bool = True,
                       dpi: int = 100) -> dict:
    """Write one PNG per image and ``grid.png`` of all images.

    An image's PNG: the input, then each model's PCA colours (top row) and
    cosine similarity to ``patch`` (bottom row, -1 blue to 1 red; the patch
    outlined in the input). The grid holds one row per image: the input,
    the PCA colours of every model, then their cosine maps.

    Args:
        model (nn.Module): A ``MomaAlgorithm`` in eval mode.
        files (Sequence[str]): Image files.
        out_dir (str): Where the PNGs go (created).
        patch (tuple[int, int], optional): (row, col) of the reference
            patch on the student's grid. Defaults to None: the centre one.
        center (bool): Centre the features before the cosine, see
            :func:`cosine_map`. Defaults to True.
        dpi (int): Resolution of the PNGs. Defaults to 100.

    Returns:
        dict: ``images`` (the PNG of each file), ``grid`` (its path),
        ``patch``, and ``pca`` / ``cosine``: ``{model: (N, L, 3) / (N, L)}``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmmoma.fileio import atomic_write

    grid = tuple(model.patch_resolution)
    if patch is None:
        patch = (grid[0] // 2, grid[1] // 2)
    if not (0 <= patch[0] < grid[0] and 0 <= patch[1] < grid[1]):
        raise ValueError(
            f'--patch {patch[0]} {patch[1]} is off the student\'s patch '
            f'grid {grid}; allowed: ROW in [0, {grid[0] - 1}], COL in '
            f'[0, {grid[1] - 1}].')
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    if len(set(stems)) != len(stems):  # a.jpg and a.png: keep extensions
        stems = [osp.basename(f).replace('.', '_') for f in files]
    if len(set(stems)) != len(stems):
        raise ValueError('--images: two files have the same name in '
                         'different folders; give one folder of images.')
    images = read_images(files, tuple(model.backbone.img_size))
    feats = patch_features(model, images)
    names = list(feats)  # the teachers, then the student
    pca = {n: pca_rgb(f) for n, f in feats.items()}
    index = patch[0] * grid[1] + patch[1]
    cos = {n: cosine_map(f, index, center) for n, f in feats.items()}
    os.makedirs(out_dir, exist_ok=True)

    def save(fig, path: str) -> str:
        fig.tight_layout()
        with atomic_write(path, 'wb') as f:
            fig.savefig(f, format='png', dpi=dpi)
        plt.close(fig)
        return path

    paths = []
    for i, stem in enumerate(stems):
        fig, axes = plt.subplots(
            2, 1 + len(names), figsize=(2 * (1 + len(names)), 4.3),
            squeeze=False)
        _show_input(axes[0, 0], images[i], grid)
        _show_input(axes[1, 0], images[i], grid, patch)
        axes[0, 0].set_title(stem, fontsize=8)
        for j, name in enumerate(names, 1):
            _show_maps(axes[:, j], pca[name][i], cos[name][i], grid)
            axes[0, j].set_title(f'{name}: PCA', fontsize=8)
            axes[1, j].set_title(f'{name}: cosine', fontsize=8)
        for ax in axes.flat:
            ax.axis('off')
        paths.append(save(fig, osp.join(out_dir, f'{stem}.png')))

    cols = 1 + 2 * len(names)
    fig, axes = plt.subplots(
        len(files), cols, figsize=(1.3 * cols, 1.3 * len(files) + 0.4),
        squeeze=False)
    for i in range(len(files)):
        _show_input(axes[i, 0], images[i], grid, patch)
        for j, name in enumerate(names):
            _show_maps(axes[i, [1 + j, 1 + len(names) + j]], pca[name][i],
                       cos[name][i], grid)
    axes[0, 0].set_title('input', fontsize=7)
    for j, name in enumerate(names):
        axes[0, 1 + j].set_title(f'{name}\nPCA', fontsize=7)
        axes[0, 1 + len(names) + j].set_title(f'{name}\ncosine', fontsize=7)
    for ax in axes.flat:
        ax.axis('off')
    grid_path = save(fig, osp.join(out_dir, 'grid.png'))
    return dict(images=paths, grid=grid_path, patch=patch, pca=pca,
                cosine=cos)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``tools/analysis_tools/visualize_features.py``."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Feature maps of a MOMA model: PCA colours and cosine '
        'similarity to one patch of each teacher\'s and the student\'s '
        'patch features, one PNG per image and grid.png.')
    parser.add_argument('config', help='a MOMA config')
    parser.add_argument('checkpoint', help='a checkpoint of it')
    parser.add_argument(
        '--images', required=True, help='a folder of images (searched '
        'recursively; sorted by path)')
    parser.add_argument(
        '--out',
        default='work_dirs/features',
        help='where the PNGs go (default: work_dirs/features)')
    parser.add_argument(
        '--patch',
        nargs=2,
        type=int,
        default=None,
        metavar=('ROW', 'COL'),
        help='the reference patch of the cosine maps, on the student\'s '
        'patch grid (default: the centre one)')
    parser.add_argument(
        '--raw-cosine',
        action='store_true',
        help='cosine maps of the raw features (default: minus their mean '
        'over all patches of all images, as the PCA)')
    parser.add_argument(
        '--num', type=int, default=None, help='only the first N images')
    parser.add_argument(
        '--device',
        default=None,
        help='default: cuda if available, else cpu')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. the teachers\' init_cfg')
    args = parser.parse_args(argv)
    if args.num is not None and args.num < 1:
        parser.error(f'--num {args.num}: allowed: an integer >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Load the model, draw the maps, print where they went."""
    from .benchmark.data import list_images
    args = parse_args(argv)
    files = list_images(args.images)[:args.num]
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = load_model(args.config, args.checkpoint, args.cfg_options,
                       device)
    result = visualize_features(
        model, files, args.out,
        tuple(args.patch) if args.patch is not None else None,
        center=not args.raw_cosine)
    print(f'visualize_features: {len(files)} image(s), models '
          f'{list(result["pca"])}, reference patch {result["patch"]} -> '
          f'{args.out}/ (grid.png and one PNG per image)')
    return result
