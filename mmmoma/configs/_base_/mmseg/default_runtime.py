# MMSegmentation 1.2's runtime (mmseg::_base_/default_runtime.py) in the
# pure-Python format.
from mmengine.visualization import LocalVisBackend
from mmseg.models import SegTTAModel
from mmseg.visualization import SegLocalVisualizer

# Importing mmmoma while the config is read puts its fixes in place (the
# stand-in for mmcv's compiled ops among them) before MMSeg is imported;
# see ../mmpretrain/default_runtime.py.
__import__('mmmoma')

default_scope = None
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type=LocalVisBackend)]
visualizer = dict(
    type=SegLocalVisualizer, vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

tta_model = dict(type=SegTTAModel)
