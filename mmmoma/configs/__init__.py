"""mmmoma's configs in MMEngine's pure-Python format.

Each module here holds the same settings as a config under the
repository's ``configs/`` (which ships as ``mmmoma/.mim/configs`` and is
reached through ``_base_ = 'mmmoma::...'`` with ``tools/train.py``). These
need no ``pkg::`` resolution, so any OpenMMLab codebase's stock
``tools/train.py`` reads a config that inherits one::

    from mmengine.config import read_base

    with read_base():
        from mmmoma.configs.moma.moma_vit_b_moco_mae_100e import *

Module names are the file names with every ``-`` made ``_`` (a module name
must be an identifier), in the same folders:
``configs/moma/moma_vit-b_moco-mae_100e.py`` is
``mmmoma.configs.moma.moma_vit_b_moco_mae_100e``. ``_base_/mmpretrain`` and
``_base_/mmseg`` restate the MMPretrain 1.2 and MMSegmentation 1.2 bases
the legacy configs inherit (their wheels ship no pure-Python ones).

Types are classes and ``default_scope`` is ``None``. The configs are read,
never imported as modules.
"""
