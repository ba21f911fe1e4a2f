# Beyond the paper (docs/recipe.md, README "Beyond the paper"): the recipe
# option that helped the random two-teacher student on both measures over 3
# seeds (k-NN +1.68, linear +1.07 at 2 epochs, spread 0.60 / 0.70; MNIST-5k
# transfer +7.3 / +4.2; one seed at 6 epochs: +2.50 / +0.69). Study v2
# (docs/study-v2, 3 seeds at 10 epochs) found no gain there: k-NN -0.21,
# linear -0.72, so it is an option for short budgets, not a default. Each
# teacher's target is the mean of its last two blocks' per-token
# LayerNorm-ed outputs (data2vec's top-K average; the study used blocks 3
# and 4 of 4, here 11 and 12 of 12), standardised per (position, channel)
# with EMA statistics over the data (after UNIC / Theia). Not measured at
# ViT-B scale.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(
    layer_fusion='mean',
    teachers=dict(
        mocov3=dict(out_indices=[10, 11]), mae=dict(out_indices=[10, 11])),
    head=dict(target_norm='position'))
