"""Train a model from an MMPretrain or MMSegmentation config.

A thin wrapper around MMEngine's Runner with MMPretrain's command line
(:func:`mmmoma.apis.launch.train`). The config's ``default_scope`` decides
which codebase builds it; mmmoma reaches it through ``custom_imports``.
Examples::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
    bash tools/dist_train.sh CONFIG 8 [ARGS]     # one process per GPU
    bash tools/dist_train.sh CONFIG 2 [ARGS]     # CPU only: 2 gloo processes
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../..')))

from mmmoma.apis.launch import train  # noqa: E402

if __name__ == '__main__':
    train()
