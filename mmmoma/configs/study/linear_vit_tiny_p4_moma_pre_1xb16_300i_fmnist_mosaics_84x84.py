# Segmentation v2 of tools/study.py, linear probe: the study model frozen,
# BatchNorm + a 1x1 convolution on its last block's patch tokens, logits
# upsampled to the 84x84 mosaics (DINOv2's and RADIO's linear
# segmentation). Pure-Python form of configs/study/linear_vit-tiny-p4_moma-
# pre_1xb16-300i_fmnist-mosaics-84x84.py. The backbone and data root come
# at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
from mmengine.config import read_base
from mmengine.optim import OptimWrapper
from mmseg.models.losses import CrossEntropyLoss
from torch.optim import AdamW

from mmmoma.models import BNLinearHead

with read_base():
    from .upernet_vit_tiny_p4_moma_pre_1xb16_300i_fmnist_mosaics_84x84 import *  # noqa: E501

model.backbone.update(out_indices=[3], final_norm=True, frozen_stages=4)
model.neck = None
model.decode_head = dict(
    type=BNLinearHead,
    in_channels=128,
    channels=128,
    in_index=0,
    dropout_ratio=0.0,
    num_classes=11,
    align_corners=False,
    loss_decode=dict(
        type=CrossEntropyLoss, use_sigmoid=False, loss_weight=1.0))
model.auxiliary_head = None

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(
        type=AdamW, lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))
