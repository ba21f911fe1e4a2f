# MOMA, MoCo v3 + MAE -> random ViT-B, 300 epochs. Pure-Python form of
# configs/moma/moma_vit-b_moco-mae_300e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

param_scheduler[0].update(end=10)
param_scheduler[1].update(T_max=290, end=300)
train_cfg.update(max_epochs=300)
