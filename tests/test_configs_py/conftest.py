"""The wheel that the tests of this folder install, built once."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from configs_py_utils import REPO_ROOT

#: What a wheel is built from: the files a source distribution holds.
SOURCE = ('pyproject.toml', 'setup.py', 'MANIFEST.in', 'model-index.yml',
          '_mmmoma_torchvision.py', 'mmmoma', 'configs', 'requirements',
          'tools')


@pytest.fixture(scope='session')
def wheel_site(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the checkout, ``pip install --no-deps
    --target`` into a fresh folder; the venv's install is left alone."""
    root = tmp_path_factory.mktemp('wheel')
    src = root / 'src'
    src.mkdir()
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    for name in SOURCE:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy(path, src / name)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run(
        pip + ['wheel', '--no-deps', '--no-build-isolation', '-w',
               str(root / 'dist'), str(src)],
        check=True,
        cwd=root)
    (wheel, ) = (root / 'dist').glob('mmmoma-*.whl')
    site = root / 'site'
    subprocess.run(
        pip + ['install', '--no-deps', '--target', str(site), str(wheel)],
        check=True,
        cwd=root)
    return site
