# MMPretrain's runtime, plus what keeps days-long MOMA runs safe:
# - EpochSeedHook: every epoch's random stream depends only on the seed and
#   the epoch, so a run resumed after a kill repeats the lost epoch exactly.
# - NonFiniteLossHook: a NaN/Inf loss stops the run at that iteration and
#   names the teacher; the last good checkpoint stays as it was.
# - PreemptionHook: on SIGTERM (Slurm's --signal=TERM@120) every rank
#   finishes its iteration, one checkpoint records the place in the epoch,
#   the job exits with code 75 (also through tools/dist_train.sh and
#   tools/slurm_train.sh), and --resume continues with the batches left;
#   the next checkpoint replaces (removes) the preemption one. Until a
#   signal comes it changes nothing.
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
custom_hooks = [
    dict(type='EpochSeedHook'),
    dict(type='NonFiniteLossHook', action='stop'),  # or 'skip' the step
    dict(type='PreemptionHook', signal='SIGTERM'),
]
randomness = dict(seed=0, diff_rank_seed=True)
resume = True  # pick up the latest checkpoint in work_dir, as MAE does
