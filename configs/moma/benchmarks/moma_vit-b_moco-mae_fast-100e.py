# MOMA, MoCo v3 + MAE -> random ViT-B, 100 epochs, with the speed options
# for GPUs (tools/benchmark.py --fast --compile measures the same settings).
_base_ = '../moma_vit-b_moco-mae_100e.py'

model = dict(
    teacher_dtype='bfloat16',  # teachers cast once; targets ~1e-2 rounding
    teacher_inference_mode=True,
    compile=True)  # torch.compile block by block
# Departs from the base: bf16 autocast instead of fp16, so no loss scaling
# (and no GradScaler check that waits for the GPU every step).
optim_wrapper = dict(
    dtype='bfloat16',
    loss_scale=dict(_delete_=True, enabled=False),
    optimizer=dict(fused=True))
data_preprocessor = dict(non_blocking=True)
train_dataloader = dict(pin_memory=True)
env_cfg = dict(cudnn_benchmark=True)
