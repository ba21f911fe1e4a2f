"""The study (mmmoma.apis.study): tools/study.py --smoke end to end on real
Fashion-MNIST, and its logic without training."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.apis import study
from mmmoma.apis.common import tool_env

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    'random', 'teacher-mae', 'teacher-mocov3', 'moco-to-mae', 'mae-to-moco',
    'moco-mae', 'moco-only', 'mae-only', 'mask-0.5', 'mask-0.75',
    'mask-0.95', 'masked-teacher', 'neck-linear', 'neck-mlp', 'loss-mse'
]
# the smoke preset's recipe row (cpu-v1 and gpu-v1 run all of them, cpu and
# gpu the recommended ones), then protocol v2's plateau and equal-FLOP rows
RECIPE = ['norm-channel']
V2 = ['moco-mae-long', 'moco-mae-4x', 'teacher-mae-flops',
      'teacher-mocov3-flops', 'mask-0.9-flops-0.5', 'mask-0.9-flops-0.75']
PNG = b'\x89PNG\r\n\x1a\n'


def _study(work: Path, publish: Path) -> str:
    proc = subprocess.run(
        [sys.executable,
         str(ROOT / 'tools/study.py'), '--smoke', '--work-dir',
         str(work), '--publish',
         str(publish)],
        cwd=work.parent,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a guard against a hang, not a speed check (it ran past 900 s when
        # the 2 cores were shared with a study)
        timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp('study')
    work, publish = base / 'work', base / 'published'
    return work, publish, _study(work, publish)


def _results(work: Path) -> dict:
    return json.loads((work / 'results.json').read_text())


@pytest.mark.needs_fmnist
def test_every_row_has_numbers(smoke):
    work, _, out = smoke
    results = _results(work)
    assert results['preset'] == 'smoke'
    rows = {r['id']: r for r in results['rows']}
    assert list(rows) == ROWS + RECIPE + V2
    for row in rows.values():
        for metric in ('knn_top1', 'linear_top1', 'mnist_knn_top1',
                       'mnist_linear_top1'):
            assert 0 <= row[metric] <= 100 and math.isfinite(row[metric])
        assert len(row['seeds']) == 1  # smoke: one seed everywhere
    # same budget for every student row but the plateau and matched ones
    students = [r for r in rows.values() if r['kind'] == 'moma']
    assert {(r['epochs'], r['images_seen']) for r in students
            if r['group'] not in ('plateau', 'flops')} == {(1, 256)}
    assert rows['moco-mae-long']['epochs'] == 2
    assert rows['moco-mae-4x']['epochs'] == 4
    assert rows['teacher-mae']['epochs'] == 2
    # the whole study's wall time, from every item's own record
    made = results['made_seconds']
    assert all(made[k] > 0 for k in ('training', 'evaluation', 'flops',
                                     'segmentation'))
    assert made['total'] == pytest.approx(sum(
        v for k, v in made.items() if k != 'total'))
    # the smoke preset trains 2 runs at once: each at its half; a run
    # that is another row's run (the same config, seed and epochs) once
    assert made['training'] == pytest.approx(sum(
        (r['train_seconds'] or 0) / (r.get('jobs') or 1)
        for r in results['runs'].values() if not r.get('same_run_as')))
    for key, twin in results['same_runs'].items():
        assert results['runs'][key]['same_run_as'] == twin
        assert results['runs'][key]['knn_top1'] == \
            results['runs'][twin]['knn_top1']
        assert f'`{key}` is `{twin}`' in (work / 'results.md').read_text()
    assert {r['jobs'] for r in results['runs'].values()
            if r.get('train_seconds')} == {2}
    assert rows['random']['images_seen'] == 0
    # counted FLOPs: the matched rows within one epoch of their target
    for key in V2[2:]:  # the matched rows
        row = rows[key]
        per_epoch = row['flops'] / row['epochs'] if not row[
            'teacher_cache'] else None
        assert row['flops_ratio'] > 0 and row['epochs'] >= 1
        if per_epoch:
            assert abs(row['flops'] - row['flops_target']) <= per_epoch
    assert rows['moco-mae']['teacher_cache'] is True
    assert rows['masked-teacher']['teacher_cache'] is False
    assert rows['teacher-mae']['flops_per_image']['teachers'] == 0
    # segmentation v2: both protocols for the smoke's rows
    assert results['best'] is None
    for protocol in ('finetune', 'linear'):
        with_miou = {i for i, r in rows.items()
                     if r.get('miou_' + protocol) is not None}
        assert with_miou == {'random', 'teacher-mocov3', 'moco-mae'}
        for name in with_miou:
            assert 0 <= rows[name]['miou_' + protocol] <= 100
    # the table lists every row, and it is what was printed
    md = (work / 'results.md').read_text()
    main = md[:md.index('## Claims')]
    table = [line for line in main.splitlines() if line.startswith('| `')]
    assert [line.split('`')[1] for line in table] == ROWS + RECIPE + V2
    assert md[md.index('| row |'):md.index('## Claims')].strip() in out
    assert md.splitlines()[4].startswith(
        '| row | teachers | init | mask ratio | seeds | epochs | images seen'
        ' | k-NN top-1 (%) | linear top-1 (%) | MNIST k-NN (%) | '
        'MNIST linear (%) | mIoU (%) | wall time | device |')
    assert results['protocol']['mnist']['mnist_train'] == 500
    # the claims, each with its verdict
    claims = results['claims']
    assert [c['number'] for c in claims] == [
        '1', '2', '3', '4', '2 (FLOPs)', '3 (FLOPs)', '5', 'plateau']
    for claim in claims:
        assert claim['verdict'] in ('held', 'mixed', 'did not hold')
        assert f'**{claim["verdict"]}**' in md
    assert '| ETA ' in out
    # each recipe row against its baseline, with a verdict
    recipe = md[md.index('## Recipe options'):]
    for key, base in (('norm-channel', 'moco-mae'), ):
        line = next(x for x in recipe.splitlines()
                    if x.startswith(f'| `{key}`'))
        assert f'| `{base}` |' in line and '**' in line
        by_id = {r['id']: r for r in results['rows']}
        transfer = (by_id[key]['mnist_knn_top1'] -
                    by_id[base]['mnist_knn_top1'])
        assert f'** | {transfer:+.2f} |' in line


@pytest.mark.needs_fmnist
def test_students_start_from_their_initialising_teacher(smoke):
    """At epoch 0 the monitor sees the teacher's own features."""
    work, _, _ = smoke
    runs = _results(work)['runs']

    def monitor(key, epoch):
        points = {p['epoch']: p['top1'] for p in runs[key]['monitor_knn']}
        return points[epoch]

    assert monitor('moco-to-mae-s0', 0) == pytest.approx(
        monitor('teacher-mae-s0', 2))
    assert monitor('mae-to-moco-s0', 0) == pytest.approx(
        monitor('teacher-mocov3-s0', 2))


@pytest.mark.needs_fmnist
def test_run_configs_say_what_the_rows_say(smoke):
    from mmengine.config import Config
    work, _, _ = smoke

    def model(key):
        return Config.fromfile(str(work / 'runs' / key / 'config.py')).model

    assert model('mask-0.5-s0').mask_ratio == 0.5
    assert model('moco-mae-s0').mask_ratio == 0.9
    assert model('masked-teacher-s0').mask_teacher_input is True
    assert model('neck-linear-s0').neck.mode == 'linear'
    assert model('loss-mse-s0').head.loss_type == 'mse'
    assert model('norm-channel-s0').head.target_norm == 'channel'
    # protocol v2: cached teachers, but for the masked teacher
    assert model('moco-mae-s0').teacher_cache.size == 256
    assert model('masked-teacher-s0').teacher_cache is None
    init = model('moco-to-mae-s0')
    assert set(init.teachers) == {'mocov3'}
    assert init.backbone.init_cfg.checkpoint.endswith(
        'teacher-mae-s0/checkpoints/mae.pth')
    assert set(model('mae-only-s0').teachers) == {'mae'}
    assert set(model('moco-mae-s0').teachers) == {'mocov3', 'mae'}
    assert Config.fromfile(
        str(work / 'runs/moco-mae-s0/config.py')).randomness.seed == 0
    # the student rows trained different weights from one random init
    states = [
        torch.load(work / f'runs/{key}/checkpoints/moma.pth',
                   weights_only=True)['state_dict']
        for key in ('moco-mae-s0', 'mask-0.5-s0')
    ]
    key = 'backbone.layers.0.attn.qkv.weight'
    assert not torch.equal(states[0][key], states[1][key])


@pytest.mark.needs_fmnist
def test_plots_and_published_files(smoke):
    work, publish, _ = smoke
    for name in ('knn_vs_epochs.png', 'acc_vs_mask_ratio.png', 'recipe.png',
                 'knn_vs_flops.png'):
        for folder in (work, publish):
            data = (folder / name).read_bytes()
            assert data[:8] == PNG and len(data) > 5000, (folder, name)
    for name in ('results.md', 'results.json', 'study_log.txt'):
        assert (publish / name).read_bytes() == (work / name).read_bytes()


@pytest.mark.needs_fmnist
def test_rerun_reuses_every_run(smoke):
    """Also: the MNIST columns of runs evaluated before they existed are
    computed, nothing else."""
    work, publish, _ = smoke
    before = _results(work)
    dropped = ['moco-mae-s0', 'teacher-mae-s0']  # two suffice: each run
    for key in dropped:  # has its own cache
        (work / 'eval' / f'{key}.mnist.json').unlink()
    out = _study(work, publish)
    trained = [k for k in before['runs'] if not k.startswith('random')]
    assert out.count(': reusing ') == len(trained) == 14 + len(RECIPE + V2)
    assert ': training ' not in out
    assert out.count(': mnist k-NN ') == len(dropped)
    assert not re.search(r'-s\d+: k-NN \d', out)  # Fashion-MNIST: reused
    # reused, not retrained
    assert not re.search(r'segmentation [\w-]+-s\d+: ', out)
    assert 'GFLOP per image and step' not in out  # counts reused
    after = _results(work)
    # reused items keep the seconds of their making; the two re-evaluated
    # MNIST sets bring theirs
    for part in ('training', 'flops', 'segmentation'):
        assert after['made_seconds'][part] == before['made_seconds'][part]
    assert after['total_seconds'] < before['made_seconds']['total']
    for key, run in before['runs'].items():
        assert after['runs'][key]['knn_top1'] == run['knn_top1'], key
        assert after['runs'][key]['linear_top1'] == run['linear_top1'], key
        for metric in ('mnist_knn_top1', 'mnist_linear_top1'):
            assert after['runs'][key][metric] == run[metric], (key, metric)


# --------------------------------------------------- logic, no training
def _row(id_, knn, linear, group='main', std=1.0, epochs=4):
    return dict(id=id_, group=group, knn_top1=knn, linear_top1=linear,
                knn_top1_std=std if group == 'main' else None,
                linear_top1_std=std if group == 'main' else None,
                epochs=epochs)


def _rows(**values):
    base = {
        'moco-mae': (80, 80), 'moco-only': (70, 70), 'mae-only': (60, 60),
        'teacher-mae': (75, 75), 'teacher-mocov3': (79.5, 85),
        'mask-0.5': (70, 70), 'mask-0.75': (81, 81), 'mask-0.95': (50, 50),
        'masked-teacher': (79.5, 60)
    }
    base.update(values)
    groups = {'moco-mae': 'main', 'moco-only': 'main', 'mae-only': 'main'}
    return [
        _row(k, *v, group=groups.get(k, 'teacher' if k.startswith('teacher')
                                     else 'ablation'),
             epochs=16 if k.startswith('teacher') else 4)
        for k, v in base.items()
    ]


def test_claim_rules():
    claims = {c['number']: c for c in study.check_claims(_rows())}
    # 1: 80 - 70 = 10 > s = 1 on both metrics
    assert claims['1']['verdict'] == 'held'
    assert claims['1']['checks'][0]['b'] == 'moco-only'
    # 2: k-NN 80 - 79.5 >= -1 holds, linear 80 - 85 does not
    assert claims['2']['verdict'] == 'mixed'
    assert claims['2']['epochs'] == dict(student=4, teacher=16)
    # 3: 80 - 81 = -1 >= -1 holds on both
    assert claims['3']['verdict'] == 'held'
    # 4: k-NN 80 - 79.5 = 0.5 is within s; linear 20 is not
    assert claims['4']['verdict'] == 'mixed'
    claims = {c['number']: c for c in study.check_claims(
        _rows(**{'moco-only': (85, 90)}))}
    assert claims['1']['verdict'] == 'did not hold'
    assert claims['1']['checks'][0]['diff'] == pytest.approx(-5)


def test_spread_is_pooled_over_main_rows():
    rows = _rows()
    rows[0]['knn_top1_std'] = 3.0  # moco-mae; the others 1.0
    assert study.pooled_std(rows, 'knn_top1') == pytest.approx(
        math.sqrt((9 + 1 + 1) / 3))
    assert study.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert study.mean_std([4.0]) == (4.0, None)


def test_rows_keep_one_budget_and_architecture():
    for name, preset in study.PRESETS.items():
        rows = study.study_rows(preset)
        extra = ('recipe', 'grid', 'long', 'plateau', 'flops')
        assert [r['id'] for r in rows if r['group'] not in extra] == ROWS
        recipe = [r['id'] for r in rows if r['group'] in extra]
        if name == 'smoke':
            assert recipe == RECIPE + V2
        elif preset['protocol'] == 1:
            assert len(recipe) >= 24
        else:
            assert recipe == study.rows.V2_RECIPE_ROWS + V2
        students = [r for r in rows if r['kind'] == 'moma']
        # one budget, 3x that for the longer-budget rows, 2x the plateau
        # check's, 4x (the teachers') the post-hoc curve's
        for row in students:
            if row['group'] != 'flops':  # matched by the study
                times = 4 if row['id'] == 'moco-mae-4x' else {
                    'long': 3, 'plateau': 2}.get(row['group'], 1)
                assert row['epochs'] == preset['student_epochs'] * times
        assert len(preset['seeds']) >= (1 if name == 'smoke' else 3)
        for row in students:
            assert len(row['seeds']) == len(
                preset['seeds'] if row['group'] in ('main', 'recipe') else
                preset['ablation_seeds'])


def test_bad_arguments():
    with pytest.raises(SystemExit):
        study.parse_args(['--seeds', '0'])
    assert study.parse_args(['--smoke']).work_dir == 'work_dirs/study-smoke'
    assert study.parse_args(['--publish']).publish == 'docs/study-v2'
    assert study.parse_args(['--preset', 'cpu-v1', '--publish'
                             ]).publish == 'docs/study'
