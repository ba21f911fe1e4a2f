# Beyond the paper: the MAE-initialised student at a tenth of the
# random-init learning rate. Pure-Python form of
# configs/moma/moma_vit-b_moco-to-mae-low-lr_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_to_mae_100e import *

optim_wrapper.optimizer.update(lr=1.5e-5 * 2048 / 256)
