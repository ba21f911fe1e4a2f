# MMPretrain's runtime plus what keeps days-long MOMA runs safe (per-epoch
# seeds, a stop on a NaN/Inf loss, a checkpoint on SIGTERM); pure-Python
# form of configs/_base_/moma_runtime.py, which explains each hook.
from mmengine.config import read_base
from mmengine.hooks import CheckpointHook, LoggerHook

from mmmoma.engine import EpochSeedHook, NonFiniteLossHook, PreemptionHook

with read_base():
    from .mmpretrain.default_runtime import *

default_hooks.update(
    logger=dict(type=LoggerHook, interval=50),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=3))
custom_hooks = [
    dict(type=EpochSeedHook),
    dict(type=NonFiniteLossHook, action='stop'),  # or 'skip' the step
    dict(type=PreemptionHook, signal='SIGTERM'),
]
randomness.update(seed=0, diff_rank_seed=True)
resume = True  # pick up the latest checkpoint in work_dir, as MAE does
