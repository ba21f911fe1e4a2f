"""Write a small semantic-segmentation dataset from Fashion-MNIST items.

Composes scenes from real Fashion-MNIST items on cluttered canvases, with
their pixel masks as labels, in ADEChallengeData2016's folders and label
convention (:mod:`mmmoma.datasets.fmnist_scenes`); with ``--mosaics``,
grids of native-scale items on black in MMSeg's img_dir/ann_dir layout
(:mod:`mmmoma.datasets.fmnist_mosaics`). Examples::

    TOOL=tools/dataset_converters/make_fmnist_scenes.py
    python $TOOL data/fmnist_scenes --num-train 2000 --num-val 500 --seed 0
    python $TOOL data/fmnist_mosaics --mosaics  # 500 + 200 of 84x84
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.make_fmnist_scenes import main  # noqa: E402

if __name__ == '__main__':
    main()
