"""MOMA end to end on Fashion-MNIST with one command, on a laptop CPU.

Offline, with no pretrained weights and no ImageNet, the chain trains its
own teachers and then distils them, each step a normal config run through
``tools/train.py``::

    1. MAE teacher      MMPretrain's MAE         configs/demo/mae_*.py
    2. MoCo v3 teacher  MMPretrain's MoCoV3      configs/demo/mocov3_*.py
    3. MOMA student     MomaAlgorithm, mask 0.9  configs/demo/moma_*.py
       (teachers loaded from steps 1-2 with
       init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.'))
    4. k-NN on frozen features of the three models and of the randomly
       initialised student, then one table.

Usage::

    python tools/demo.py                       # CPU default, <= 15 min
    python tools/demo.py --smoke               # CI, <= 3 min
    python tools/demo.py --preset gpu          # longer, on one GPU
    python tools/demo.py --force               # retrain everything

Outputs under ``--work-dir`` (default ``work_dirs/demo``): one folder per
step with MMEngine's logs and checkpoints and ``curves.png`` (losses,
learning rate and k-NN monitor against iterations),
``checkpoints/{mae,mocov3,moma}.pth`` (weights only, the files the next
steps load), ``results.json`` and ``results.md``. A rerun reuses every
step whose checkpoint exists and was made with the same settings and
config.

k-NN protocol (step 4): class token of the last block, L2-normalised;
memory bank = the first ``knn_train`` Fashion-MNIST train images, queries =
the first ``knn_test`` test images (the whole 10k test split by default);
DINO's weighted vote with k=20 and temperature 0.07. Images are unaugmented
28x28. See ``mmmoma/evaluation/knn.py``; the chain is
``mmmoma/apis/demo.py``.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../..')))

from mmmoma.apis.common import stop_children_on_sigterm  # noqa: E402
from mmmoma.apis.demo import main  # noqa: E402

if __name__ == '__main__':
    stop_children_on_sigterm()
    main()
