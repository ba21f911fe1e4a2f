# The student of tools/study.py's protocol v2: the v1 student (128-d x4)
# with the demo's student step (unaugmented images, teacher_cache).
# Pure-Python form of
# configs/study/moma_vit-tiny-p4_moco-mae_1xb128-coslr-cached_fmnist.py.
from mmengine.config import read_base
from mmpretrain.datasets import PackInputs

with read_base():
    from .moma_vit_tiny_p4_moco_mae_1xb128_coslr_fmnist import *

train_dataloader.dataset.pipeline = [dict(type=PackInputs)]
model.update(teacher_cache=dict(size=10000))
