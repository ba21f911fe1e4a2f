# UperNet with a MOMA ViT-B/16 student on the composed Fashion-MNIST scenes
# (tools/dataset_converters/make_fmnist_scenes.py: ADE20K's layout, label
# k = Fashion-MNIST class k - 1, 0 ignored): the ADE20K recipe with the
# scenes' 10 garment classes, so that the per-class table names them. The
# data root and the student come at launch:
#   --cfg-options model.backbone.init_cfg.checkpoint=CKPT
#       train_dataloader.dataset.data_root=DIR
#       val_dataloader.dataset.data_root=DIR
#       test_dataloader.dataset.data_root=DIR
_base_ = './upernet_vit-b16_moma-pre_8xb2-160k_ade20k-512x512.py'

# MMSeg's plain BaseSegDataset reads the ADE20K layout with any class names
# (ADE20KDataset accepts only a subset of its own 150).
scenes = dict(
    type='BaseSegDataset',
    reduce_zero_label=True,
    metainfo=dict(
        classes=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
        palette=[[220, 20, 60], [119, 11, 32], [0, 0, 142], [0, 0, 230],
                 [106, 0, 228], [0, 60, 100], [0, 80, 100], [0, 0, 70],
                 [250, 170, 30], [100, 170, 30]]))
model = dict(
    decode_head=dict(num_classes=10), auxiliary_head=dict(num_classes=10))
train_dataloader = dict(dataset=scenes)
val_dataloader = dict(dataset=scenes)
test_dataloader = val_dataloader
