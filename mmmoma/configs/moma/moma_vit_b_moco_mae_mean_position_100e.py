# Beyond the paper: the mean of the teachers' last two blocks as targets,
# standardised per (position, channel). Pure-Python form of
# configs/moma/moma_vit-b_moco-mae-mean-position_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.update(layer_fusion='mean')
model.teachers.mocov3.update(out_indices=[10, 11])
model.teachers.mae.update(out_indices=[10, 11])
model.head.update(target_norm='position')
