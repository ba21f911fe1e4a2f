"""Convert an official MAE or MoCo v3 ViT checkpoint to MMPretrain weights.

Example::

    TOOL=tools/model_converters/official_to_mmpretrain.py
    python $TOOL --format mae --arch b mae_pretrain_vit_base.pth mae_vit-b.pth

The output loads into ``mmpretrain.VisionTransformer`` with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
(:mod:`mmmoma.apis.official_to_mmpretrain`).
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.official_to_mmpretrain import main  # noqa: E402

if __name__ == '__main__':
    main()
