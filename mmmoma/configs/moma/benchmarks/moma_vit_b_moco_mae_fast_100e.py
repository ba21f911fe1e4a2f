# MOMA, MoCo v3 + MAE -> random ViT-B, 100 epochs, with the speed options
# for GPUs. Pure-Python form of
# configs/moma/benchmarks/moma_vit-b_moco-mae_fast-100e.py.
from mmengine.config import read_base

with read_base():
    from ..moma_vit_b_moco_mae_100e import *

model.update(
    teacher_dtype='bfloat16',  # teachers cast once; targets ~1e-2 rounding
    teacher_inference_mode=True,
    compile=True)  # torch.compile block by block
# Departs from the base: bf16 autocast instead of fp16, no loss scaling.
optim_wrapper.update(
    dtype='bfloat16', loss_scale=dict(enabled=False),
    optimizer=dict(fused=True))
data_preprocessor.update(non_blocking=True)
train_dataloader.update(pin_memory=True)
env_cfg.update(cudnn_benchmark=True)
