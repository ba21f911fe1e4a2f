"""knn_evaluate_checkpoint finds the config's k-NN hook in file configs and
in pure-Python configs (whose hook type is the class)."""
import pytest
from mmengine.config import Config

from mmmoma.apis.common import REPO_ROOT
from mmmoma.evaluation.knn import find_knn_hook, knn_evaluate_checkpoint

DEMO = 'demo/moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py'
DEMO_PY = 'demo/moma_vit_mini_p4_moco_mae_1xb128_coslr_fmnist.py'


def test_file_and_pure_python_configs_give_the_same_hook():
    text = find_knn_hook(Config.fromfile(f'{REPO_ROOT}/configs/{DEMO}'))
    pure = find_knn_hook(
        Config.fromfile(f'{REPO_ROOT}/mmmoma/configs/{DEMO_PY}'))
    assert text is not None and pure is not None
    assert text['type'] == 'KNNEvalHook'
    assert pure['type'].__name__ == 'KNNEvalHook'
    for key in ('k', 'temperature', 'interval'):
        assert text.get(key) == pure.get(key)
    assert (text['val_dataloader']['dataset']['split'] ==
            pure['val_dataloader']['dataset']['split'])


def test_scoped_name_and_missing_hook():
    cfg = Config(dict(custom_hooks=[
        dict(type='EMAHook'),
        dict(type='mmpretrain.KNNEvalHook', k=5)]))
    assert find_knn_hook(cfg)['k'] == 5
    assert find_knn_hook(Config(dict(custom_hooks=[]))) is None
    bare = Config(dict(model=dict(type='MAE'), custom_hooks=None))
    with pytest.raises(ValueError, match='no KNNEvalHook in custom_hooks'):
        knn_evaluate_checkpoint(bare)
