# Ablation: the teachers also see only the student's visible patches (the
# paper reports that this hurts). Pure-Python form of
# configs/moma/moma_vit-b_moco-mae-masked-teacher_100e.py.
from mmengine.config import read_base

with read_base():
    from .moma_vit_b_moco_mae_100e import *

model.update(mask_teacher_input=True)
