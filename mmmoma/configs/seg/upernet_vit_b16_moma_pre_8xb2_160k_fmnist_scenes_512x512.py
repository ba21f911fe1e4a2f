# UperNet with a MOMA ViT-B/16 student on the composed Fashion-MNIST scenes
# (ADE20K's layout, 10 garment classes). Pure-Python form of
# configs/seg/upernet_vit-b16_moma-pre_8xb2-160k_fmnist-scenes-512x512.py.
# The data root and the student come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
from mmengine.config import read_base
from mmseg.datasets import BaseSegDataset

with read_base():
    from .upernet_vit_b16_moma_pre_8xb2_160k_ade20k_512x512 import *

# MMSeg's plain BaseSegDataset reads the ADE20K layout with any class names.
scenes = dict(
    type=BaseSegDataset,
    reduce_zero_label=True,
    metainfo=dict(
        classes=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
        palette=[[220, 20, 60], [119, 11, 32], [0, 0, 142], [0, 0, 230],
                 [106, 0, 228], [0, 60, 100], [0, 80, 100], [0, 0, 70],
                 [250, 170, 30], [100, 170, 30]]))
model.update(
    decode_head=dict(num_classes=10), auxiliary_head=dict(num_classes=10))
train_dataloader.dataset.update(scenes)
val_dataloader.dataset.update(scenes)
test_dataloader = val_dataloader
