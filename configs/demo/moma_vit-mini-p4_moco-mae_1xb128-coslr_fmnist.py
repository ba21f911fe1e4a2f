# MOMA on Fashion-MNIST: step 3 of tools/demo.py. The MoCo v3 and MAE
# teachers of steps 1-2 (128-d, 4 blocks) are distilled into a smaller
# student (96-d, 4 blocks) that sees 10% of the 49 patches (4 of them).
# The teachers are the checkpoints of steps 1-2, which tools/demo.py passes
# as (the same for mae)
#   --cfg-options model.teachers.mocov3.init_cfg._delete_=True
#       model.teachers.mocov3.init_cfg.type=Pretrained
#       model.teachers.mocov3.init_cfg.checkpoint=PATH
#       model.teachers.mocov3.init_cfg.prefix=backbone.
# Without them (init_cfg=None) the teachers stay random: for tests only.
_base_ = [
    '../_base_/models/moma_vit-b.py',
    './_base_/datasets/fmnist_bs128_mae.py',
    './_base_/schedules/fmnist_adamw_coslr.py',
    './_base_/fmnist_runtime.py',
]
custom_imports = dict(imports=['mmmoma'], allow_failed_imports=False)

# choice: CPU-sized teachers and student (MOMA: ViT-B, 224 px, 16 px
# patches); the teachers match configs/demo/{mocov3,mae}_vit-tiny-p4_*.py.
teacher_arch = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=96,
            num_layers=4,
            num_heads=3,
            feedforward_channels=384),
        img_size=28,
        patch_size=4),
    teachers=dict(
        mocov3=dict(
            arch=dict(_delete_=True, **teacher_arch),
            img_size=28,
            patch_size=4,
            init_cfg=None),
        mae=dict(
            arch=dict(_delete_=True, **teacher_arch),
            img_size=28,
            patch_size=4,
            init_cfg=None)),
    # the base's 2-block feature decoder, narrowed to 64-d for the CPU
    neck=dict(decoder_embed_dims=64, decoder_depth=2, decoder_num_heads=4))

# choice: the student step sees each image unaugmented (MOMA's teachers see
# the original image; the paper's ImageNet recipe also crops and flips), so
# that an image's teacher features are the same in every epoch and
# teacher_cache computes them once: from the second epoch on a step runs
# only the student, its necks and heads (the teachers were ~60% of a CPU
# step), and the 0.9 mask still draws new visible patches every epoch.
# teacher_cache.size must cover the images per epoch: tools/demo.py sets it
# to its preset's train_samples (float32: 256 MB per teacher for 10k).
train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))
model.update(teacher_cache=dict(size=10000))
