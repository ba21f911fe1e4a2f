"""Ship ``configs/``, ``tools/`` and ``model-index.yml`` inside the package.

Everything else about the package is in ``pyproject.toml``. A regular build
(``pip install .``, a wheel) copies them to ``mmmoma/.mim/``, the layout of
OpenMMLab's ``add_mim_extension``, so that ``_base_ = 'mmmoma::dir/name.py'``
works without the source tree, ``mim search mmmoma`` reads
``.mim/model-index.yml`` and ``mim train mmmoma CONFIG`` runs
``.mim/tools/train.py``. An editable install copies nothing:
``mmmoma.compat.config_roots`` then reads ``configs/`` in the checkout. The
pure-Python configs are the package ``mmmoma.configs`` and need no copy.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

#: What goes into ``mmmoma/.mim``: folders and files of the repository root.
#: ``configs`` is required (``mmmoma::`` resolves in it); without the others
#: the package still works, but not with mim.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def add_mim_extension(build_lib: str) -> list:
    """Copy :data:`MIM_FILES` into ``mmmoma/.mim`` under ``build_lib``.

    Args:
        build_lib (str): The build folder of ``build_py``.

    Returns:
        list[str]: The names of :data:`MIM_FILES` that were not found.

    Raises:
        FileNotFoundError: ``configs/`` is missing (not a full checkout).
    """
    if not os.path.isdir('configs'):
        raise FileNotFoundError(
            f'{os.path.abspath("configs")} is missing: the package ships the '
            'configs (build from a full checkout or sdist)')
    mim = os.path.join(build_lib, 'mmmoma', '.mim')
    # A fresh copy: a file deleted since the last build must not ship.
    shutil.rmtree(mim, ignore_errors=True)
    os.makedirs(mim)
    missing = []
    for name in MIM_FILES:
        target = os.path.join(mim, name)
        if os.path.isdir(name):
            shutil.copytree(
                name,
                target,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        elif os.path.isfile(name):
            shutil.copyfile(name, target)
        else:
            missing.append(name)
    return missing


class BuildPyWithMim(build_py):
    """``build_py`` that also fills ``mmmoma/.mim`` in the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        for name in add_mim_extension(self.build_lib):
            self.warn(f'{os.path.abspath(name)} is missing: the package '
                      'will not work with mim')


setup(cmdclass={'build_py': BuildPyWithMim})
