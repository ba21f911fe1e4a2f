# MOMA on Fashion-MNIST: step 3 of tools/demo.py. The MoCo v3 and MAE
# teachers of steps 1-2 (128-d, 4 blocks) are distilled into a smaller
# student (96-d, 4 blocks) that sees 10% of the 49 patches. Pure-Python form
# of configs/demo/moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py, which
# shows the --cfg-options that load the teachers' checkpoints; without them
# (init_cfg=None) the teachers stay random: for tests only.
from mmengine.config import read_base
from mmpretrain.datasets import PackInputs

with read_base():
    from .._base_.models.moma_vit_b import *
    from ._base_.datasets.fmnist_bs128_mae import *
    from ._base_.schedules.fmnist_adamw_coslr import *
    from ._base_.fmnist_runtime import *

# choice: CPU-sized teachers and student (MOMA: ViT-B, 224 px, 16 px
# patches); the teachers match demo/{mocov3,mae}_vit_tiny_p4_*.py.
teacher_arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
model.backbone.update(
    arch=dict(
        embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384),
    img_size=28,
    patch_size=4)
model.teachers.mocov3.update(
    arch=dict(teacher_arch), img_size=28, patch_size=4, init_cfg=None)
model.teachers.mae.update(
    arch=dict(teacher_arch), img_size=28, patch_size=4, init_cfg=None)
# the base's 2-block feature decoder, narrowed to 64-d for the CPU
model.neck.update(
    decoder_embed_dims=64, decoder_depth=2, decoder_num_heads=4)

# choice: the student step sees each image unaugmented, so that teacher
# features are the same every epoch and teacher_cache computes them once;
# tools/demo.py sets teacher_cache.size to its preset's train_samples.
train_dataloader.dataset.pipeline = [dict(type=PackInputs)]
model.update(teacher_cache=dict(size=10000))
