# The student of tools/study.py: the demo's MOMA config with a student of
# the teachers' size (128-d, 4 blocks), the augmented pipeline and no
# teacher cache. Pure-Python form of
# configs/study/moma_vit-tiny-p4_moco-mae_1xb128-coslr_fmnist.py.
from mmengine.config import read_base

with read_base():
    from ..demo.moma_vit_mini_p4_moco_mae_1xb128_coslr_fmnist import *

train_dataloader.dataset.pipeline = train_pipeline
model.update(teacher_cache=None)
model.backbone.arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
