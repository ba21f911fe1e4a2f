"""Helpers for the reliability tests: tiny-config runs and their logs."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
PLUGINS = ROOT / 'tests/data/plugins'


def run(cmd: list, env: dict = None, timeout: float = 300,
        new_session: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd`` with stdout and stderr merged, extra ``env`` on top;
    with ``new_session``, in its own process group (one that a test may
    signal as a whole)."""
    return subprocess.run([str(c) for c in cmd],
                          env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout,
                          start_new_session=new_session)


def train_cmd(work_dir: Path, options: list, *extra: str,
              config: Path = CONFIG) -> list:
    """``tools/train.py`` on the tiny config (or ``config``)."""
    return [
        sys.executable,
        str(ROOT / 'tools/train.py'),
        str(config), '--work-dir',
        str(work_dir), *extra, '--cfg-options', *options
    ]


def config_with_hooks(folder: Path, hooks: str) -> Path:
    """The tiny config plus the fault-injection hooks ``hooks``, a Python
    list of dicts after the project's own two hooks."""
    path = folder / 'tiny_with_hooks.py'
    path.write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['mmmoma', 'reliability_hooks'], "
        'allow_failed_imports=False)\n'
        f'custom_hooks = [dict(type=\'EpochSeedHook\'), {hooks}]\n')
    return path


def plugin_env() -> dict:
    """Environment that lets a subprocess import tests/data/plugins."""
    path = os.pathsep.join(
        p for p in (str(PLUGINS), str(ROOT), os.environ.get('PYTHONPATH'))
        if p)
    return {'PYTHONPATH': path}


def runs_losses(work_dir: Path) -> list:
    """``{iteration: {loss name: value}}`` of each run in a work dir (one
    scalars.json each), in the order they ran."""
    runs = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        out = {}
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                out[rec['iter']] = {
                    k: v
                    for k, v in rec.items() if k.startswith('loss')
                }
        runs.append(out)
    return runs


def key_bias(name: str, value) -> slice:
    """The key part of a fused qkv bias, else an empty slice. Its true
    gradient is exactly 0 (softmax ignores a shift shared by all keys), so
    AdamW moves it by ~lr on rounding noise alone, differently in 1 and 2
    processes; DDP comparisons leave it out."""
    if name.endswith('qkv.bias'):
        dims = value.shape[0] // 3
        return slice(dims, 2 * dims)
    return slice(0, 0)


def iteration_losses(work_dir: Path) -> dict:
    """``{iteration: {loss name: value}}`` from every scalars.json in a
    work dir (all runs, later runs overwrite earlier ones)."""
    out = {}
    for losses in runs_losses(work_dir):
        out.update(losses)
    return out


# A 32 px MOMA: 32-d student and teachers, one decoder block per neck.
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2,
                 feedforward_channels=64)
TINY_VIT = dict(arch=TINY_ARCH, img_size=32, patch_size=8)
TINY_MOMA = dict(
    type='MomaAlgorithm',
    backbone=dict(type='mmpretrain.MAEViT', **TINY_VIT),
    teachers=dict(
        mocov3=dict(type='mmpretrain.MoCoV3ViT', out_type='raw', **TINY_VIT),
        mae=dict(
            type='mmpretrain.VisionTransformer', out_type='raw', **TINY_VIT)),
    neck=dict(type='MomaNeck', decoder_embed_dims=32, decoder_depth=1,
              decoder_num_heads=2),
    head=dict(type='SmoothL1AlignHead'),
    mask_ratio=0.75)


def tiny_moma_loading(where: str, path: Path):
    """The tiny MOMA built with ``where`` (e.g. ``'teachers.mae.init_cfg'``)
    a ``Pretrained`` init of ``path``, weights not loaded yet."""
    import copy

    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(TINY_MOMA)
    node = cfg
    for key in where.split('.')[:-1]:
        node = node[key]
    node['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.')
    return MODELS.build(cfg)
