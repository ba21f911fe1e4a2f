"""Feature maps of a MOMA model, its teachers beside its student.

For each image in ``--images``: the input, then the PCA colours (first 3
components as RGB, fitted jointly over all images, per model) and the
cosine similarity to one patch (``--patch ROW COL``, default the centre) of
each teacher's and the student's patch features. Writes one PNG per image
and ``grid.png`` to ``--out``::

    python tools/analysis_tools/visualize_features.py CONFIG CKPT --images DIR

The teachers come from the checkpoint when it holds them
(``save_teachers=True``), else from their ``init_cfg``: give the config
MMEngine saved in the run's work dir (it has the paths the run used), or
pass their checkpoints with
``--cfg-options model.teachers.NAME.init_cfg.checkpoint=PATH`` (where the
config's ``init_cfg`` is None, as in ``configs/demo/``, also
``init_cfg._delete_=True``, ``init_cfg.type=Pretrained`` and
``init_cfg.prefix=backbone.``). The drawing is
:mod:`mmmoma.apis.visualize_features`.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../../..')))

from mmmoma.apis.visualize_features import main  # noqa: E402

if __name__ == '__main__':
    main()
