# The student of tools/study.py's protocol v2 (docs/study_protocol.md): the
# demo's student step (unaugmented images, the teachers' targets computed
# in the first epoch and then reused: teacher_cache) with a student of the
# teachers' size (128-d, 4 blocks), so that a teacher checkpoint can
# initialise it. The study sets teacher_cache.size to its images per epoch,
# and teacher_cache=None for the masked-teacher row, whose targets depend
# on the mask. Protocol v1's student is
# moma_vit-tiny-p4_moco-mae_1xb128-coslr_fmnist.py (augmented, no cache).
#   python tools/study.py --preset cpu
_base_ = '../demo/moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512)))
