# The student of tools/study.py's protocol v2: the demo's student step
# (unaugmented images, teacher_cache) at the teachers' size (128-d, 4
# blocks). Pure-Python form of
# configs/study/moma_vit-tiny-p4_moco-mae_1xb128-coslr-cached_fmnist.py.
from mmengine.config import read_base

with read_base():
    from ..demo.moma_vit_mini_p4_moco_mae_1xb128_coslr_fmnist import *

model.backbone.arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
