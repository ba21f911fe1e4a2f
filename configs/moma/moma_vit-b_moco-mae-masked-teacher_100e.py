# Ablation: the teachers also see only the student's visible patches (the
# paper reports that this hurts). Targets then exist at visible positions.
_base_ = './moma_vit-b_moco-mae_100e.py'

model = dict(mask_teacher_input=True)
