"""Extract the student backbone of a MOMA checkpoint.

Writes a standalone MMPretrain backbone checkpoint
``{'state_dict': {'backbone.<name>': tensor, ...}, 'meta': {...}}`` that
loads with ``weights_only=True`` and reports everything it dropped
(:mod:`mmmoma.apis.extract_student`). Example::

    CKPT=work_dirs/moma_vit-b_moco-mae_100e/epoch_100.pth
    python tools/model_converters/extract_student.py $CKPT student.pth
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.extract_student import main  # noqa: E402

if __name__ == '__main__':
    main()
