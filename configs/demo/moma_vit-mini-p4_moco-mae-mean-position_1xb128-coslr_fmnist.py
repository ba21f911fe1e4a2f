# MOMA on Fashion-MNIST, step 3 of tools/demo.py from the recipe study to
# study v2, which found no gain at 10 epochs (3 seeds: k-NN -0.21, linear
# -0.72; docs/study-v2), so the demo runs the paper's step again
# (docs/recipe.md, README "Beyond the paper"). The paper's step
# (moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py, the base of the study's
# students) with the one recipe option that helped the random two-teacher
# student on both measures over 3 seeds (k-NN +1.68, linear +1.07 at the
# study's 2 epochs, spread 0.60 / 0.70; MNIST-5k transfer +7.3 / +4.2):
# each teacher's target is the mean of its last two blocks' per-token
# LayerNorm-ed outputs (blocks 3 and 4 of 4; data2vec's top-K average),
# standardised per (position, channel) with EMA statistics over the data
# (after UNIC / Theia). Teachers and their checkpoints as in the base.
_base_ = './moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py'

model = dict(
    layer_fusion='mean',
    teachers=dict(
        mocov3=dict(out_indices=[2, 3]), mae=dict(out_indices=[2, 3])),
    head=dict(target_norm='position'))
