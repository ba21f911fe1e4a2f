"""mmmoma as a downstream project gets it: environments that see one
install or another, the tools OpenMMLab packages ship, generated data."""
import gzip
import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def install_env(kind: str, site: Path = None) -> dict:
    """The environment of a subprocess that sees mmmoma as ``kind``.

    'editable': the venv's editable install with the checkout on
    ``PYTHONPATH``. MMEngine 0.10.7 (``get_installed_path``) and mim find a
    package's files through pkg_resources, which for a PEP 660 editable
    install names site-packages; from the checkout it finds the
    ``mmmoma.egg-info`` that ``pip install -e`` writes there (or, with mmmoma
    not installed at all, the package itself). 'wheel': ``site`` (the
    ``wheel_site`` folder) first on ``PYTHONPATH``.
    """
    first = {'editable': REPO_ROOT, 'wheel': site}[kind]
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(first), os.environ.get('PYTHONPATH')) if p)
    return env


def shipped_tool(package: str, name: str = 'train.py') -> Path:
    """A tool that an OpenMMLab package ships in ``<package>/.mim/tools``."""
    origin = Path(importlib.util.find_spec(package).origin)
    tool = origin.parent / '.mim' / 'tools' / name
    assert tool.is_file(), f'{package} ships no {tool}'
    return tool


def run(args: list, cwd: Path, env: dict,
        timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a command; a non-zero exit fails the test with its output."""
    proc = subprocess.run([str(a) for a in args],
                          cwd=cwd,
                          env=env,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with '
                    f'{proc.returncode}:\n{proc.stdout[-6000:]}')
    return proc


def write_fake_fmnist(root: Path, num_train: int = 40,
                      num_test: int = 20) -> Path:
    """Random 28x28 Fashion-MNIST idx files (gzipped), both splits."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, num in (('train', num_train), ('t10k', num_test)):
        images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
        labels = (np.arange(num) % 10).astype(np.uint8)
        for name, magic, array in ((f'{split}-images-idx3-ubyte', 0x803,
                                    images),
                                   (f'{split}-labels-idx1-ubyte', 0x801,
                                    labels)):
            head = magic.to_bytes(4, 'big') + b''.join(
                d.to_bytes(4, 'big') for d in array.shape)
            with gzip.open(root / f'{name}.gz', 'wb') as f:
                f.write(head + array.tobytes())
    return root
