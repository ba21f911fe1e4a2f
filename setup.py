"""Ship the repository's ``configs/`` inside the package.

Everything else about the package is in ``pyproject.toml``. A regular build
(``pip install .``, a wheel) copies ``configs/`` to ``mmmoma/.mim/configs``,
the place MMPretrain uses, so that ``_base_ = 'mmmoma::dir/name.py'`` works
without the source tree. An editable install copies nothing:
``mmmoma.compat.config_roots`` then reads ``configs/`` in the checkout.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = 'configs'


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/`` into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        if not os.path.isdir(CONFIGS):
            raise FileNotFoundError(
                f'{os.path.abspath(CONFIGS)} is missing: the package ships '
                'the configs (build from a full checkout or sdist)')
        target = os.path.join(self.build_lib, 'mmmoma', '.mim', 'configs')
        # A fresh copy: a config deleted since the last build must not ship.
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            CONFIGS,
            target,
            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(cmdclass={'build_py': BuildPyWithConfigs})
