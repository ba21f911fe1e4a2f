"""A downstream project's config inherits mmmoma's pure-Python configs.

From a folder outside the checkout, as another repository would: a config
``with read_base(): from mmmoma.configs.<dir>.<name> import *`` run by the
stock ``tools/train.py`` that MMPretrain and MMSegmentation ship (no mmmoma
launcher, no ``mmmoma::`` resolution), for two iterations on generated
Fashion-MNIST data: the study's MOMA student (KNNEvalHook included), then
the study's UperNet with that student as backbone. Both with the venv's
editable install and with a wheel installed into a folder of its own.
"""
import json
import sys
from pathlib import Path

import pytest
from configs_py_utils import (REPO_ROOT, install_env, run, shipped_tool,
                              write_fake_fmnist)

PRETRAIN = '''\
# A downstream config: mmmoma's study student on this project's data.
from mmengine.config import read_base

with read_base():
    from mmmoma.configs.study.moma_vit_tiny_p4_moco_mae_1xb128_coslr_fmnist import *  # noqa: E501

data_root = {fmnist!r}
train_dataloader.update(batch_size=4)
train_dataloader.dataset.update(data_root=data_root, num_samples=8)
knn = custom_hooks[0]
knn.update(k=4)
knn.train_dataloader.dataset.update(data_root=data_root, num_samples=16)
knn.val_dataloader.dataset.update(data_root=data_root, num_samples=8)
train_cfg.update(max_epochs=1)
default_hooks.logger.update(interval=1)
log_processor = dict(window_size=1)
'''

SEG = '''\
# A downstream config: mmmoma's study UperNet on a pretrained student.
from mmengine.config import read_base

with read_base():
    from mmmoma.configs.study.upernet_vit_tiny_p4_moma_pre_1xb8_2k_fmnist_scenes_64x64 import *  # noqa: E501

model.backbone.init_cfg.checkpoint = {ckpt!r}
train_dataloader.update(batch_size=2)
train_dataloader.dataset.data_root = {scenes!r}
val_dataloader.update(batch_size=2)
val_dataloader.dataset.data_root = {scenes!r}
test_dataloader = val_dataloader
train_cfg.update(max_iters=2, val_interval=2)
default_hooks.logger.update(interval=1)
default_hooks.checkpoint.update(interval=2)
log_processor.update(window_size=1)
'''


def scalars(work_dir: Path) -> list:
    """The records of MMEngine's ``scalars.json`` of the one run."""
    (path, ) = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    from mmmoma.datasets.fmnist_scenes import make_scenes
    root = tmp_path_factory.mktemp('downstream_data')
    fmnist = write_fake_fmnist(root / 'fmnist')
    scenes = root / 'scenes'
    make_scenes(str(scenes), str(fmnist), num_train=4, num_val=2, size=64)
    return dict(fmnist=fmnist, scenes=scenes)


@pytest.fixture(scope='module', params=['editable', 'wheel'])
def project(request, tmp_path_factory) -> dict:
    """A downstream folder and the environment that sees mmmoma one way."""
    site = (request.getfixturevalue('wheel_site')
            if request.param == 'wheel' else None)
    env = install_env(request.param, site)
    folder = tmp_path_factory.mktemp(f'downstream_{request.param}')
    assert REPO_ROOT not in folder.parents
    return dict(kind=request.param, site=site, env=env, folder=folder)


@pytest.fixture(scope='module')
def pretrained(project, data) -> Path:
    """Two iterations of the downstream MOMA config, MMPretrain's tool."""
    folder = project['folder']
    config = folder / 'moma_downstream.py'
    config.write_text(PRETRAIN.format(fmnist=str(data['fmnist'])))
    work_dir = folder / 'work_moma'
    run([
        sys.executable,
        shipped_tool('mmpretrain'), config, '--work-dir', work_dir
    ], folder, project['env'])
    return work_dir


def test_the_project_sees_the_intended_mmmoma(project):
    """MMEngine resolves ``mmmoma.configs`` in the install under test."""
    probe = ('import importlib.util\n'
             'from mmengine.utils import get_installed_path\n'
             "print(importlib.util.find_spec('mmmoma').origin)\n"
             "print(get_installed_path('mmmoma'))\n")
    out = run([sys.executable, '-c', probe], project['folder'],
              project['env']).stdout.split()
    first = REPO_ROOT if project['kind'] == 'editable' else project['site']
    package = first / 'mmmoma'
    assert out[-2:] == [str(package / '__init__.py'), str(package)]


def test_mmpretrain_train_runs_a_downstream_moma_config(pretrained):
    records = scalars(pretrained)
    iters = [r for r in records if 'loss' in r]
    assert [r['iter'] for r in iters] == [1, 2]
    for record in iters:
        assert {'loss_mocov3', 'loss_mae', 'lr'} <= set(record)
    # KNNEvalHook, built from classes under default_scope=None, ran
    assert any('knn/top1' in r for r in records)
    assert (pretrained / 'epoch_1.pth').is_file()


def test_mmseg_train_runs_a_downstream_seg_config(project, data, pretrained):
    folder = project['folder']
    config = folder / 'seg_downstream.py'
    ckpt = pretrained / 'epoch_1.pth'
    config.write_text(
        SEG.format(ckpt=str(ckpt), scenes=str(data['scenes'])))
    work_dir = folder / 'work_seg'
    out = run([
        sys.executable,
        shipped_tool('mmseg'), config, '--work-dir', work_dir
    ], folder, project['env']).stdout
    records = scalars(work_dir)
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2]
    assert any('mIoU' in r for r in records)  # validation after 2 iters
    assert (work_dir / 'iter_2.pth').is_file()
    # MomaViT loaded the student of the pretraining run
    assert f'MomaViT: student weights from {ckpt}' in out
