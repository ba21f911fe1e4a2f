"""``_base_ = 'mmmoma::...'`` in a config outside the repository.

MMEngine resolves ``package::path`` only for packages it knows, so
``import mmmoma`` (``mmmoma.compat.fix_config_prefix``) must run before
``Config.fromfile``; ``tools/train.py`` and ``tools/test.py`` do that first.
A regular install ships ``configs/`` as ``mmmoma/.mim/configs``; an editable
install reads ``configs/`` in the checkout.
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from mmengine.config import Config

import mmmoma  # noqa: F401  (before Config.fromfile: enables mmmoma::)
from mmmoma import compat

REPO_ROOT = Path(__file__).resolve().parents[1]
MOMA_CONFIG = 'moma/moma_vit-b_moco-mae_100e.py'
DOWNSTREAM = f"""
_base_ = 'mmmoma::{MOMA_CONFIG}'
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)
"""


def test_downstream_config_inherits_the_real_moma_config(tmp_path):
    """Needs configs/moma/moma_vit-b_moco-mae_100e.py in the checkout."""
    cfg_file = tmp_path / 'downstream.py'
    cfg_file.write_text(DOWNSTREAM)
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.model.type == 'MomaAlgorithm'
    # No `_scope_='mmmoma'`: there is no such registry scope.
    assert cfg.model.get('_scope_') != 'mmmoma'
    assert 'mmmoma' in cfg.custom_imports['imports']


def test_prefix_resolves_in_config_roots_without_a_scope(tmp_path,
                                                         monkeypatch):
    roots = tmp_path / 'configs'
    (roots / 'toy').mkdir(parents=True)
    (roots / 'toy' / 'base.py').write_text(
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='MAE', backbone=dict(type='MAEViT'))\n")
    monkeypatch.setattr(compat, 'config_roots', lambda: [str(roots)])
    child = tmp_path / 'elsewhere' / 'child.py'
    child.parent.mkdir()
    child.write_text("_base_ = 'mmmoma::toy/base.py'\n"
                     'model = dict(backbone=dict(arch="s"))\n')
    cfg = Config.fromfile(str(child))
    assert cfg.model.type == 'MAE'
    assert cfg.model.backbone.arch == 's'
    assert '_scope_' not in cfg.model
    assert cfg.default_scope == 'mmpretrain'

    child.write_text("_base_ = 'mmmoma::toy/missing.py'\n")
    with pytest.raises(FileNotFoundError, match='toy/missing.py'):
        Config.fromfile(str(child))


def test_other_packages_prefixes_still_resolve(tmp_path):
    cfg_file = tmp_path / 'mae.py'
    cfg_file.write_text("_base_ = 'mmpretrain::mae/"
                        "mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'\n")
    assert Config.fromfile(str(cfg_file)).model.type == 'MAE'


def test_source_checkout_reads_the_repository_configs():
    """Editable install or PYTHONPATH: configs/ beside the package."""
    package_dir = Path(mmmoma.__file__).resolve().parent
    if (package_dir / '.mim').exists():
        pytest.skip('mmmoma is a regular install here')
    assert compat.config_roots() == [str(REPO_ROOT / 'configs')]


def test_wheel_ships_configs_and_resolves_them(tmp_path):
    """A regular install (wheel) copies configs/ to mmmoma/.mim/configs."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'setup.py', 'MANIFEST.in',
                 '_mmmoma_torchvision.py'):
        shutil.copy(REPO_ROOT / name, src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for name in ('mmmoma', 'configs', 'requirements'):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    subprocess.run(
        pip + ['wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
               str(tmp_path / 'dist'), str(src)],
        check=True,
        cwd=tmp_path)
    (wheel, ) = (tmp_path / 'dist').glob('mmmoma-*.whl')
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        shipped = {n for n in names if '/.mim/configs/' in n}
    # the torchvision fix that mmmoma.compat and the venv hook share
    assert '_mmmoma_torchvision.py' in names
    expected = {
        'mmmoma/.mim/configs/' + p.relative_to(src / 'configs').as_posix()
        for p in (src / 'configs').rglob('*') if p.is_file()
    }
    assert expected and shipped == expected

    # Install it alone into a folder and load a downstream config from there.
    site = tmp_path / 'site'
    subprocess.run(
        pip + ['install', '--no-deps', '-q', '--target', str(site),
               str(wheel)],
        check=True,
        cwd=tmp_path)
    (tmp_path / 'downstream.py').write_text(DOWNSTREAM)
    probe = ('import mmmoma; from mmengine.config import Config; '
             'print(mmmoma.__file__); '
             "print(Config.fromfile('downstream.py').text)")
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONWARNINGS='ignore')
    out = subprocess.run([sys.executable, '-c', probe],
                         cwd=tmp_path,
                         env=env,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True)
    assert out.returncode == 0, out.stdout[-4000:]
    assert str(site / 'mmmoma' / '__init__.py') in out.stdout
    # Config.text starts each parsed file with its path.
    shipped_config = site / 'mmmoma' / '.mim' / 'configs' / MOMA_CONFIG
    assert str(shipped_config) in out.stdout
