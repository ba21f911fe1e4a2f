"""Helpers for the reliability tests: tiny-config runs and their logs."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
PLUGINS = ROOT / 'tests/data/plugins'


def run(cmd: list, env: dict = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cmd`` with stdout and stderr merged, extra ``env`` on top."""
    return subprocess.run([str(c) for c in cmd],
                          env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)


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


def iteration_losses(work_dir: Path) -> dict:
    """``{iteration: {loss name: value}}`` from every scalars.json in a
    work dir (all runs, later runs overwrite earlier ones)."""
    out = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'loss' in rec and 'iter' in rec:
                out[rec['iter']] = {
                    k: v
                    for k, v in rec.items() if k.startswith('loss')
                }
    return out
