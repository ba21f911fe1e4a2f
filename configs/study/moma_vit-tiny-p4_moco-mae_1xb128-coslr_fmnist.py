# The student of tools/study.py: the demo's MOMA config with a student of the
# teachers' size (128-d, 4 blocks, as configs/demo/{mae,mocov3}_*.py), so
# that a teacher checkpoint can initialise it (the MoCo v3 -> MAE-initialised
# and MAE -> MoCo-v3-initialised rows) and every student row of the study
# has one architecture. MOMA also distils ViT-B teachers into a ViT-B.
#   python tools/study.py --preset cpu
_base_ = '../demo/moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py'

# The demo's student step sees unaugmented images and caches its teachers'
# features; the study keeps the augmented pipeline of the MAE dataset base
# and runs the teachers every step, so that every row (the masked-teacher
# ablation, whose targets depend on the mask, included) trains alike.
train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline}}))

model = dict(
    teacher_cache=None,
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512)))
