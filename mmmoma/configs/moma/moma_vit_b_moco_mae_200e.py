# MOMA, MoCo v3 + MAE -> random ViT-B, 200 epochs. Pure-Python form of
# configs/moma/moma_vit-b_moco-mae_200e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

param_scheduler[0].update(end=10)
param_scheduler[1].update(T_max=190, end=200)
train_cfg.update(max_epochs=200)
