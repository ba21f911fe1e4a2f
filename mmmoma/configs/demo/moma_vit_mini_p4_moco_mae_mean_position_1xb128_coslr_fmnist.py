# MOMA on Fashion-MNIST, the demo's step 3 from the recipe study to study
# v2: the paper's step with the mean of the teachers' last two blocks as
# targets, standardised per (position, channel). Pure-Python form of
# configs/demo/moma_vit-mini-p4_moco-mae-mean-position_1xb128-coslr_fmnist.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_mini_p4_moco_mae_1xb128_coslr_fmnist import *

model.update(layer_fusion='mean')
model.teachers.mocov3.update(out_indices=[2, 3])
model.teachers.mae.update(out_indices=[2, 3])
model.head.update(target_norm='position')
