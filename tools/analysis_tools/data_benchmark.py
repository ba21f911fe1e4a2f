"""Measure how many images per second a config's train pipeline sustains.

Runs ``train_dataloader.dataset.pipeline`` of a config on the image files of
a folder (any layout; the files are cycled), so no dataset annotation is
needed. First in this process on one thread, as a dataloader worker runs it:
images/s and milliseconds per image of each transform (medians of
``--repeats`` runs, as everything here). Then through a
``torch.utils.data.DataLoader`` with the config's collate function, for each
``--workers`` count: images/s of whole batches in steady state (after the
batches the workers prefetch at start-up; at least 2 timed per worker).
Prints a table and writes JSON::

    cfg=configs/moma/moma_vit-b_moco-mae_100e.py
    tool=tools/analysis_tools/data_benchmark.py
    python $tool $cfg --images IMAGE_DIR --workers 1 2 --out data.json

Compare pipelines with ``--cfg-options``, e.g. MMPretrain's PIL-resized
crop instead of ``FastRandomResizedCrop``::

    crop=train_dataloader.dataset.pipeline.1
    opts="$crop.type=RandomResizedCrop $crop.backend=pillow"
    python $tool $cfg --images IMAGE_DIR --cfg-options $opts

A training step of S images/s per GPU needs about S / (images/s of one
worker) dataloader workers per GPU, each on a core of its own. The
measurement is :mod:`mmmoma.apis.benchmark.data`.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.benchmark.data import main  # noqa: E402

if __name__ == '__main__':
    main()
