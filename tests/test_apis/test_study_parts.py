"""mmmoma.apis.study: run configs and segmentation results, no training."""
import json

from mmengine.config import Config

from mmmoma.apis import study
from mmmoma.apis.study.rows import recipe_pairs
from mmmoma.apis.study.runs import checkpoint_of, write_run_config
from mmmoma.apis.study.segment import read_miou


def test_read_miou_takes_the_last_validation(tmp_path):
    assert read_miou(str(tmp_path)) is None
    path = tmp_path / '20240101_000000' / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    lines = [{'loss': 1.0, 'iter': 4, 'step': 4},
             {'aAcc': 80.0, 'mIoU': 12.5, 'mAcc': 20.0, 'step': 4},
             {'loss': 0.5, 'iter': 8, 'step': 8},
             {'aAcc': 9.0, 'mIoU': 1.2799999713897705, 'step': 8}]
    path.write_text(''.join(json.dumps(e) + '\n' for e in lines))
    assert read_miou(str(tmp_path)) == 1.28  # float32 in the file


def test_run_config_holds_the_row(tmp_path):
    rows = {r['id']: r for r in study.study_rows(study.PRESETS['smoke'])}
    work = str(tmp_path)
    for kind in ('mae', 'mocov3'):  # the teachers a student depends on
        path = tmp_path / checkpoint_of(work, f'teacher-{kind}-s0', kind)
        path.parent.mkdir(parents=True)
        path.write_bytes(b'')
    extra = {'custom_hooks.0.interval': 1}
    config, teachers = write_run_config(work, rows['moco-to-mae'], 0, extra)
    assert set(teachers) == {'mocov3'}
    cfg = Config.fromfile(config)
    assert set(cfg.model.teachers) == {'mocov3'}
    assert cfg.model.backbone.init_cfg.checkpoint == checkpoint_of(
        work, 'teacher-mae-s0', 'mae')
    assert cfg.study_run.options == extra
    assert cfg.randomness.seed == 0
    mtime = (tmp_path / 'runs/moco-to-mae-s0/config.py').stat().st_mtime_ns
    write_run_config(work, rows['moco-to-mae'], 0, extra)  # unchanged
    assert (tmp_path / 'runs/moco-to-mae-s0/config.py').stat(
    ).st_mtime_ns == mtime
    config, teachers = write_run_config(work, rows['teacher-mae'], 0, extra)
    assert teachers == {}
    assert Config.fromfile(config).model.type == 'MAE'


def test_recipe_rows_give_configs_that_build(tmp_path):
    from mmpretrain.registry import MODELS
    rows = study.study_rows(study.PRESETS['cpu-v1'])
    recipe = [r for r in rows if r['group'] == 'recipe']
    assert len(recipe) >= 12 and all(len(r['seeds']) == 3 for r in recipe)
    smoke = [r['id'] for r in study.study_rows(study.PRESETS['smoke'])
             if r['group'] == 'recipe']
    assert smoke == ['norm-channel']
    work = str(tmp_path)
    for kind in ('mae', 'mocov3'):
        path = tmp_path / checkpoint_of(work, f'teacher-{kind}-s0', kind)
        path.parent.mkdir(parents=True)
        path.write_bytes(b'')
    by_id = {r['id']: r for r in recipe}
    cfgs = {}
    for key in ('norm-phi-s', 'layers-mean', 'mask-guided',
                'balance-drop', 'mae-to-moco-lr-warmup'):
        config, _ = write_run_config(work, by_id[key], 0, {})
        cfgs[key] = Config.fromfile(config)
        model = cfgs[key].model.to_dict()
        model['backbone'].pop('init_cfg', None)  # no weights written
        MODELS.build(model)
    assert cfgs['norm-phi-s'].model.head.target_norm == 'phi_s'
    assert cfgs['layers-mean'].model.layer_fusion == 'mean'
    assert all(t.out_indices == [2, 3]
               for t in cfgs['layers-mean'].model.teachers.values())
    assert cfgs['mask-guided'].model.mask_guide.teacher == 'mocov3'
    assert cfgs['balance-drop'].model.teacher_balance == dict(type='drop',
                                                              p=0.5)
    warm = cfgs['mae-to-moco-lr-warmup']
    assert warm.optim_wrapper.optimizer.lr == 1.5e-4
    assert warm.model.neck_warmup_iters == 40
    assert set(warm.model.teachers) == {'mae'}
    assert warm.model.backbone.init_cfg.checkpoint == checkpoint_of(
        work, 'teacher-mocov3-s0', 'mocov3')
    assert study.select_rows(rows, 'recipe') == [
        r for r in rows if r['group'] in ('teacher', 'recipe')]
    import pytest
    with pytest.raises(ValueError, match=r"--rows='nope': unknown \['nope'\]"):
        study.select_rows(rows, 'nope')


def test_longer_budget_rows_pair_with_their_own_baselines():
    rows = study.study_rows(study.PRESETS['cpu-v1'])
    by_id = {r['id']: r for r in rows}
    long = [r for r in rows if r['group'] == 'long']
    assert {r['id'] for r in long} == {
        'moco-mae-3x', 'mean-position-3x', 'mae-to-moco-3x',
        'mae-to-moco-lr-3x', 'moco-to-mae-3x', 'moco-to-mae-lr-3x'}
    assert all(r['epochs'] == 6 and r['seeds'] == [0] for r in long)
    assert by_id['moco-mae']['epochs'] == 2
    # the option rows keep their options; only budget and seeds change
    assert by_id['mean-position-3x']['model'] == by_id['mean-position'][
        'model']
    assert by_id['moco-to-mae-lr-3x']['lr'] == 1.5e-4
    assert by_id['moco-to-mae-lr-3x']['init'] == 'mae'
    pairs = {r["id"]: b["id"] for r, b in recipe_pairs(rows)}
    assert pairs['mean-position-3x'] == 'moco-mae-3x'
    assert pairs['mae-to-moco-lr-3x'] == 'mae-to-moco-3x'
    assert pairs['moco-to-mae-lr'] == 'moco-to-mae'
    assert 'moco-mae-3x' not in pairs


def test_recipe_table_reports_transfer_beside_the_verdict():
    from mmmoma.apis.study.report import recipe_table

    def row(id_, knn, linear, mnist, group='main', **extra):
        return dict(id=id_, label=id_, group=group, init=None, seeds=[0, 1],
                    knn_top1=knn, linear_top1=linear, mnist_knn_top1=mnist,
                    mnist_linear_top1=mnist + 1, **extra)

    rows = [row('moco-mae', 70.0, 77.0, 50.0),
            row('norm-channel', 72.0, 76.9, 47.5, group='recipe')]
    spread = dict(knn_top1=1.0, linear_top1=0.5, mnist_knn_top1=2.0,
                  mnist_linear_top1=None)
    lines = recipe_table(rows, dict(spread=spread))
    line = next(x for x in lines if x.startswith('| `norm-channel`'))
    # the verdict reads k-NN and linear only: MNIST-5k is beside it
    assert '**helps on one metric** | -2.50 | -2.50 |' in line
    assert 'MNIST-5k' in ' '.join(lines) and '2.00' in ' '.join(lines)
