"""Plot a training run's curves from MMEngine's ``scalars.json``.

One PNG: the losses (the total and each teacher's ``loss_<teacher>``) on a
log scale, the learning rate, and the k-NN monitor (``knn/top1``) against
iterations, with epochs on the top axis::

    tool=tools/analysis_tools/plot_curves.py
    python $tool work_dirs/moma_vit-b_moco-mae_100e   # -> its curves.png
    python $tool WORK_DIR --keys loss_mae lr --out curves.png

A work dir's sessions (a resumed run has several) are read in order. The
plotting is :mod:`mmmoma.apis.curves`.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.curves import main  # noqa: E402

if __name__ == '__main__':
    main()
