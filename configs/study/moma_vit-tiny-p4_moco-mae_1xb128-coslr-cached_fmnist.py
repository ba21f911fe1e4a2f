# The student of tools/study.py's protocol v2 (docs/study_protocol.md): the
# v1 student (the teachers' size, 128-d x4, so that a teacher checkpoint
# can initialise it) with the demo's student step: unaugmented images, and
# the teachers' targets computed in the first epoch and then reused
# (teacher_cache). The study sets teacher_cache.size to its images per
# epoch, and teacher_cache=None for the masked-teacher row, whose targets
# depend on the mask.
#   python tools/study.py --preset cpu
_base_ = './moma_vit-tiny-p4_moco-mae_1xb128-coslr_fmnist.py'

train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))
model = dict(teacher_cache=dict(_delete_=True, size=10000))
