"""OpenMMLab's mim on mmmoma: model-index.yml, metafiles, ``mim search`` and
``mim train``.

mim reads ``<package>/.mim/model-index.yml`` and runs
``<package>/.mim/tools/train.py``, which a regular install ships (setup.py's
``add_mim_extension``); the runs use the wheel of ``wheel_site``. mim finds
a package through pkg_resources, which for an editable install names
site-packages, so an editable install has no ``.mim`` for it to read.
"""
import sys
from pathlib import Path

import pytest
import yaml
from configs_py_utils import REPO_ROOT, install_env, run, write_fake_fmnist

FAMILIES = ('moma', 'seg', 'demo')


def index_models() -> list:
    from modelindex.load_model_index import load
    return list(load(str(REPO_ROOT / 'model-index.yml')).models)


def test_model_index_lists_the_config_families():
    from modelindex.load_model_index import load
    index = load(str(REPO_ROOT / 'model-index.yml'))
    assert index.check(silent=True) == []
    configs = {m.name: m.config for m in index.models}
    expected = {
        p.relative_to(REPO_ROOT).as_posix()
        for family in FAMILIES
        for p in (REPO_ROOT / 'configs' / family).rglob('*.py')
        if '_base_' not in p.parts
    }
    assert set(configs.values()) == expected
    for name, config in configs.items():
        assert Path(config).stem == name  # OpenMMLab's naming
    collections = {m.in_collection for m in index.models}
    assert collections <= {c.name for c in index.collections}


def test_results_only_where_measured():
    """The demo's k-NN numbers (README); no ImageNet/ADE20K run here."""
    measured = {
        m.name: m.results[0].metrics['k-NN Top 1 Accuracy']
        for m in index_models() if m.results
    }
    assert measured == {
        'mae_vit-tiny-p4_1xb128-coslr_fmnist': 65.72,
        'mocov3_vit-tiny-p4_1xb128-coslr_fmnist': 74.66,
        'moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist': 75.02,
        'moma_vit-mini-p4_moco-mae-mean-position_1xb128-coslr_fmnist': 75.56,
    }
    for family in ('moma', 'seg'):
        meta = yaml.safe_load(
            (REPO_ROOT / 'configs' / family / 'metafile.yml').read_text())
        assert all(not m.get('Results') and not m.get('Weights')
                   for m in meta['Models'])


def test_wheel_ships_mim_files_and_pure_python_configs(wheel_site):
    package = wheel_site / 'mmmoma'
    mim = package / '.mim'
    assert (mim / 'model-index.yml').read_text() == (
        REPO_ROOT / 'model-index.yml').read_text()
    assert (mim / 'tools' / 'train.py').is_file()
    for model in index_models():
        assert (mim / model.config).is_file(), model.config
    shipped = {
        p.relative_to(package).as_posix()
        for p in (package / 'configs').rglob('*.py')
    }
    in_repo = {
        p.relative_to(REPO_ROOT / 'mmmoma').as_posix()
        for p in (REPO_ROOT / 'mmmoma' / 'configs').rglob('*.py')
    }
    assert shipped == in_repo


def test_mim_search_lists_the_configs(wheel_site, tmp_path):
    env = install_env('wheel', wheel_site)
    out = run([sys.executable, '-m', 'mim', 'search', 'mmmoma'], tmp_path,
              env).stdout
    for model in index_models():
        assert f'config id: {model.name}\n' in out
        assert model.config[:40] in out  # long paths are cut at 44
    out = run([
        sys.executable, '-m', 'mim', 'search', 'mmmoma', '--config',
        'moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist'
    ], tmp_path, env).stdout
    assert 'fashion-mnist/k-nn_top_1_accuracy' in out and '75.02' in out


@pytest.mark.parametrize('config', [
    '.mim/configs/demo/mae_vit-tiny-p4_1xb128-coslr_fmnist.py',
    'configs/demo/mae_vit_tiny_p4_1xb128_coslr_fmnist.py'
], ids=['listed', 'pure-python'])
def test_mim_train_runs_a_config_by_name(wheel_site, tmp_path, config):
    """``mim train mmmoma NAME.py``: mim finds the config by file name in
    the package and runs the package's tools/train.py (one process, CPU);
    the pure-Python form of the same config runs the same way."""
    fmnist = write_fake_fmnist(tmp_path / 'fmnist')
    work_dir = tmp_path / 'work'
    knn = 'custom_hooks.0.'
    options = [
        f'train_dataloader.dataset.data_root={fmnist}',
        'train_dataloader.dataset.num_samples=8',
        'train_dataloader.batch_size=4', 'train_cfg.max_epochs=1',
        f'{knn}train_dataloader.dataset.data_root={fmnist}',
        f'{knn}train_dataloader.dataset.num_samples=16',
        f'{knn}val_dataloader.dataset.data_root={fmnist}',
        f'{knn}val_dataloader.dataset.num_samples=8', f'{knn}k=4',
        'default_hooks.logger.interval=1'
    ]
    out = run([
        sys.executable, '-m', 'mim', 'train', 'mmmoma',
        Path(config).name, '--gpus', '0', '--work-dir', work_dir,
        '--cfg-options'
    ] + options, tmp_path, install_env('wheel', wheel_site)).stdout
    package = wheel_site / 'mmmoma'
    assert (f'Training command is {sys.executable} '
            f'{package}/.mim/tools/train.py {package / config} '
            '--launcher none') in out
    assert 'Epoch(train) [1][2/2]' in out
    assert (work_dir / 'epoch_1.pth').is_file()
    assert 'Training finished successfully' in out


def test_a_listed_name_is_one_file_in_the_package(wheel_site):
    """``mim train`` finds a config by file name anywhere in the package;
    the pure-Python forms have other names, so a listed name is unique."""
    for model in index_models():
        name = Path(model.config).name
        assert list(wheel_site.rglob(name)) == [
            wheel_site / 'mmmoma' / '.mim' / model.config
        ]
