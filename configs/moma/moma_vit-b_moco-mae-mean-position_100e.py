# Beyond the paper (docs/recipe.md, README "Beyond the paper"): the two
# recipe options that led the recipe study's first pass for the random
# two-teacher student (seed 0; 3-seed verdicts pending), together. Each teacher's target is the mean of its last two blocks'
# per-token LayerNorm-ed outputs (data2vec's top-K average; the study used
# blocks 3 and 4 of 4, here 11 and 12 of 12), standardised per (position,
# channel) with EMA statistics over the data (after UNIC / Theia).
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(
    layer_fusion='mean',
    teachers=dict(
        mocov3=dict(out_indices=[10, 11]), mae=dict(out_indices=[10, 11])),
    head=dict(target_norm='position'))
