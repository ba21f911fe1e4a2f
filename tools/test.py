"""Test (and evaluate) a checkpoint with an MMPretrain or MMSeg config.

A thin wrapper around MMEngine's Runner with MMPretrain's command line
(:func:`mmmoma.apis.launch.test`). The config's ``default_scope`` decides
which codebase builds it. Examples::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [ARGS]
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../..')))

from mmmoma.apis.launch import test  # noqa: E402

if __name__ == '__main__':
    test()
