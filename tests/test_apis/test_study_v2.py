"""Protocol v2 of the study, no training: presets, run configs, FLOP-matched
epochs, segmentation runs and the v2 claims."""
import pytest
from mmengine.config import Config

from mmmoma.apis import study
from mmmoma.apis.study.report import render
from mmmoma.apis.study.rows import STUDENT_CONFIG, STUDENT_CONFIG_V2
from mmmoma.apis.study.runs import checkpoint_of, run_extra, write_run_config
from mmmoma.apis.study.v2 import (aggregate_seg, attach_flops,
                                  check_claims_v2, match_epochs, seg_settings,
                                  seg_tasks, with_matched)


def _teachers(tmp_path):
    work = str(tmp_path)
    for kind in ('mae', 'mocov3'):
        path = tmp_path / checkpoint_of(work, f'teacher-{kind}-s0', kind)
        path.parent.mkdir(parents=True)
        path.write_bytes(b'')
    return work


def test_v1_presets_keep_their_runs():
    """cpu-v1 / gpu-v1 are the v1 presets under their old run names and
    folders; the v2 presets train longer and have the v2 rows."""
    presets = study.PRESETS
    for v1, old in (('cpu-v1', 'cpu'), ('gpu-v1', 'gpu')):
        assert presets[v1]['protocol'] == 1
        assert presets[v1]['run_name'] == old
        assert presets[v1]['work_dir'] == f'work_dirs/study-{old}'
        ids = {r['id'] for r in study.study_rows(presets[v1])}
        assert not ids & {'moco-mae-long', 'teacher-mae-flops'}
        assert study.parse_args(['--preset', v1]).work_dir == (
            f'work_dirs/study-{old}')
    cpu = presets['cpu']
    assert cpu['protocol'] == 2 and 'run_name' not in cpu
    # not v1's folder, whose teachers v2 would retrain over
    assert study.parse_args([]).work_dir == 'work_dirs/study-v2-cpu'
    # the students train a quarter of the teachers' epochs
    for name in ('cpu', 'gpu'):
        p = presets[name]
        assert 4 * p['student_epochs'] == p['teacher_epochs']['mae'] == \
            p['teacher_epochs']['mocov3']
    rows = {r['id']: r for r in study.study_rows(cpu)}
    assert rows['moco-mae-long']['epochs'] == 2 * rows['moco-mae']['epochs']
    assert rows['teacher-mocov3-flops']['match'] == 'moco-mae'
    assert rows['mask-0.9-flops-0.5']['mask_ratio'] == 0.9
    assert not any(r['group'] in ('long', 'grid') for r in rows.values())


def test_v2_students_use_the_cached_config(tmp_path):
    work = _teachers(tmp_path)
    rows = {r['id']: r for r in study.study_rows(study.PRESETS['cpu'])}
    preset = study.PRESETS['cpu']
    config, _ = write_run_config(work, rows['moco-mae'], 0,
                                 run_extra(rows['moco-mae'], preset), preset)
    text = open(config).read()
    assert f'_base_ = {STUDENT_CONFIG_V2!r}' in text
    cfg = Config.fromfile(config)
    assert cfg.model.teacher_cache.size == preset['train_samples']
    assert cfg.train_dataloader.dataset.pipeline == [dict(type='PackInputs')]
    masked = Config.fromfile(write_run_config(
        work, rows['masked-teacher'], 0, {}, preset)[0])
    assert masked.model.teacher_cache is None
    assert masked.model.mask_teacher_input is True
    # teachers monitor every teacher_monitor_every epochs
    assert run_extra(rows['teacher-mae'], preset)[
        'custom_hooks.0.interval'] == preset['teacher_monitor_every']
    assert run_extra(rows['teacher-mae-flops'], preset)[
        'custom_hooks.0.interval'] == preset['monitor_every']
    # v1: the augmented student, no cache; the same text as before v2
    v1 = study.PRESETS['cpu-v1']
    config, _ = write_run_config(work, rows['moco-mae'], 1, {}, v1)
    text = open(config).read()
    assert f'_base_ = {STUDENT_CONFIG!r}' in text
    assert 'teacher_cache' not in text
    write_run_config(work, rows['moco-mae'], 2, {})
    assert open(config.replace('-s1', '-s2')).read() == text.replace(
        'moco-mae-s1', 'moco-mae-s2').replace('seed=1', 'seed=2').replace(
            "'seed': 1", "'seed': 2")


def test_matched_epochs_follow_the_counted_flops():
    """Hand computation: the reference costs 10 epochs of 1.0 + 0.4 per
    image after the first (cached teachers: 0.6 of 1.0); a row costing 0.5
    per image needs 1 + (target - 0.5 n) / (0.5 n) epochs."""
    preset = dict(train_samples=100)
    ref = dict(id='moco-mae', epochs=10, teacher_cache=True,
               flops_per_image=dict(step=1.0, teachers=0.6))
    row = dict(id='teacher-mae-flops', match='moco-mae', epochs=40,
               teacher_cache=False,
               flops_per_image=dict(step=0.5, teachers=0.0))
    far = dict(id='x', match='moco-mae', epochs=40, teacher_cache=False,
               flops_per_image=dict(step=100.0, teachers=0.0))
    rows = [ref, row, far]
    match_epochs(rows, preset)
    target = 100 * (1.0 + 9 * 0.4)  # 460
    assert row['flops_target'] == pytest.approx(target)
    assert row['epochs'] == round(1 + (target - 50) / 50)  # 9.2 -> 9
    assert far['epochs'] == 1  # at least one epoch
    attach_flops(rows, preset)
    assert ref['flops'] == pytest.approx(target)
    assert ref['flops_curve'][:3] == pytest.approx([0, 100, 140])
    assert row['flops'] == pytest.approx(450)
    assert row['flops_ratio'] == pytest.approx(450 / 460)
    assert 'flops_ratio' not in ref


def test_a_selection_brings_the_rows_it_is_matched_to():
    rows = study.study_rows(study.PRESETS['cpu'])
    picked = with_matched(rows, study.select_rows(rows, 'flops'))
    ids = [r['id'] for r in picked]
    assert {'moco-mae', 'mask-0.5', 'mask-0.75', 'teacher-mae-flops',
            'mask-0.9-flops-0.75'} <= set(ids)
    assert 'moco-only' not in ids
    assert ids == [r['id'] for r in rows if r['id'] in ids]  # table order


def test_seg_tasks_give_each_seed_its_checkpoint():
    rows = [dict(id='random', kind=None, seeds=[0]),
            dict(id='teacher-mae', kind='mae', seeds=[0]),
            dict(id='moco-mae', kind='moma', seeds=[0, 1, 2])]
    runs = {'teacher-mae-s0': dict(checkpoint='t.pth'),
            **{f'moco-mae-s{s}': dict(checkpoint=f's{s}.pth')
               for s in range(3)}}
    preset = dict(seg=dict(iters=4, seeds=[0, 1], protocols=[
        'mosaics-finetune', 'mosaics-linear'], rows=['random', 'teacher-mae',
                                                     'moco-mae', 'absent']))
    tasks = seg_tasks(rows, runs, preset)
    assert len(tasks) == 2 * 3 * 2
    got = {(t['protocol'], t['name']): t['checkpoint'] for t in tasks}
    assert got[('mosaics-linear', 'random-s1')] is None
    assert got[('mosaics-finetune', 'teacher-mae-s1')] == 't.pth'
    assert got[('mosaics-finetune', 'moco-mae-s1')] == 's1.pth'
    assert {t['seed'] for t in tasks} == {0, 1}
    # a run's settings do not hold the lists: adding a row keeps results
    assert seg_settings(preset, 'mosaics-linear') == dict(
        iters=4, protocol='mosaics-linear')
    # the presets give each protocol its config's schedule
    assert [seg_settings(study.PRESETS['cpu'], p)['iters'] for p in (
        'mosaics-finetune', 'mosaics-linear')] == [1000, 300]
    aggregate_seg(rows, tasks, [dict(miou=10.0 + i) for i in range(12)])
    # protocols, then rows, then seeds: moco-mae is tasks 4, 5 and 10, 11
    assert rows[2]['miou_finetune'] == pytest.approx(14.5)
    assert rows[2]['miou_linear'] == pytest.approx(20.5)
    assert rows[0]['miou_finetune_std'] == pytest.approx(0.5**0.5)


def _row(id_, knn, linear, group='main', **extra):
    return dict(id=id_, label=id_, group=group, knn_top1=knn,
                linear_top1=linear, **extra)


def test_v2_claims_by_the_rules():
    from mmmoma.apis.study.claims import pooled_std
    rows = [
        _row('moco-mae', 70.0, 78.0, miou_finetune=40.0,
             miou_finetune_std=2.0),
        _row('teacher-mae-flops', 60.0, 79.5, group='flops'),
        _row('teacher-mocov3-flops', 65.0, 70.0, group='flops'),
        _row('mask-0.5', 69.0, 78.0, group='ablation'),
        _row('mask-0.75', 72.0, 78.0, group='ablation'),
        _row('mask-0.9-flops-0.5', 71.0, 78.5, group='flops'),
        _row('mask-0.9-flops-0.75', 70.5, 78.5, group='flops'),
        _row('moco-mae-long', 72.5, 78.5, group='plateau'),
        _row('random', 0, 0, miou_finetune=30.0, miou_finetune_std=2.0),
        _row('teacher-mae', 0, 0, miou_finetune=41.0, miou_finetune_std=2.0),
        _row('teacher-mocov3', 0, 0, miou_finetune=43.0,
             miou_finetune_std=2.0),
    ]
    # the segmentation spread pools every segmented row's std
    assert pooled_std(rows, 'miou_finetune', None) == pytest.approx(2.0)
    spread = dict(knn_top1=1.0, linear_top1=1.0, miou_finetune=2.0)
    claims = {c['number']: c for c in check_claims_v2(rows, spread)}
    # 2: k-NN 70 - 65 >= -1 yes; linear 78 - 79.5 = -1.5 no
    assert claims['2 (FLOPs)']['verdict'] == 'mixed'
    assert [c['b'] for c in claims['2 (FLOPs)']['checks']] == [
        'teacher-mocov3-flops', 'teacher-mae-flops']
    # 3: the smaller difference: k-NN 70.5 - 72 = -1.5 no; linear +0.5 yes
    c3 = claims['3 (FLOPs)']['checks']
    assert c3[0]['diff'] == pytest.approx(-1.5) and not c3[0]['held']
    assert c3[1]['held']
    # 5: 40 - 30 > 2 yes; 40 - 43 >= -2 no
    assert claims['5']['verdict'] == 'mixed'
    assert claims['5']['checks'][1]['b'] == 'teacher-mocov3'
    # the protocol's bar: MoCo v3 teacher at 30% mIoU or more
    assert claims['5']['bar'] == dict(row='teacher-mocov3', value=43.0,
                                      needed=30.0, met=True)
    # plateau: k-NN gains 2.5 > 1 (still learning), linear 0.5 <= 1
    assert [c['held'] for c in claims['plateau']['checks']] == [False, True]
    assert claims['plateau']['verdict'] == 'mixed'
    # rows missing: the claims that need them are left out; claim 5 with
    # the teachers that were segmented
    assert check_claims_v2(rows[:1], spread) == []
    claims = {c['number']: c for c in check_claims_v2(rows[:-1], spread)}
    assert claims['5']['checks'][1]['b'] == 'teacher-mae'
    assert claims['5']['verdict'] == 'held'  # 40 - 41 >= -2
    assert claims['5']['bar'] is None  # MoCo v3 not segmented
    rows[-1]['miou_finetune'] = 29.9
    claims = {c['number']: c for c in check_claims_v2(rows, spread)}
    assert claims['5']['bar']['met'] is False


def test_report_says_whether_the_segmentation_bar_is_met():
    from mmmoma.apis.study.report_v2 import v2_sections
    rows = [_row('moco-mae', 70.0, 78.0, miou_finetune=40.0),
            _row('teacher-mocov3', 80.0, 82.0, miou_finetune=12.5)]
    info = dict(spread=dict(miou_finetune=1.0),
                settings=study.PRESETS['smoke'])
    claim = dict(number='5', claim='The student transfers to segmentation',
                 comparison='c', verdict='held', checks=[], bar=dict(
                     row='teacher-mocov3', value=12.5, needed=30.0,
                     met=False))
    md = '\n'.join(v2_sections(rows, [claim], info))
    assert ('**The protocol\'s bar is not met**: `teacher-mocov3` '
            'fine-tuned to 12.50% mIoU, under 30%.') in md
    # said before the verdict, and beside it
    assert md.index('bar is not met') < md.index('**held**')
    assert "**held** (the protocol's bar not met: measured, not decided)" \
        in md
    claim['bar'].update(value=34.0, met=True)
    md = '\n'.join(v2_sections(rows, [claim], info))
    assert ("The protocol's bar is met: `teacher-mocov3` fine-tuned to "
            '34.00% mIoU (at least 30%)') in md
    assert '| **held** |' in md
    md = '\n'.join(v2_sections(rows, [], info))
    assert 'was not checked' in md


def test_render_has_the_v2_sections():
    preset = dict(study.PRESETS['smoke'])
    rows = [dict(_row('moco-mae', 70.0, 78.0), teachers=['mae'], init=None,
                 kind='moma', mask_ratio=0.9, seeds=[0], epochs=1,
                 images_seen=256, knn_top1_std=None, linear_top1_std=None,
                 mnist_knn_top1=None, mnist_knn_top1_std=None,
                 mnist_linear_top1=None, mnist_linear_top1_std=None,
                 train_seconds=1.0, train_seconds_std=None, devices=[],
                 miou_finetune=40.0, miou_finetune_std=None,
                 miou_linear=20.0, flops=2.5e12, teacher_cache=True,
                 flops_per_image=dict(step=2.67e8, teachers=1.69e8))]
    info = dict(command='x', preset='smoke', settings=preset, jobs=1,
                best=None, total_seconds=1.0,
                made_seconds=dict(total=7260.0, training=3600.0,
                                  evaluation=60.0, flops=0.0,
                                  segmentation=3600.0),
                spread=dict(knn_top1=None, linear_top1=None))
    md = render(rows, [], info)
    assert 'no row was segmented' not in md
    assert '## Training compute' in md
    assert '| `moco-mae` | 1 | 0.27 GFLOP | 0.17 GFLOP | yes | 2.50 TFLOP |' \
        in md
    assert '## Segmentation (mosaics)' in md
    assert 'Wall time of the whole study' in md and 'training 1h00m' in md
    assert '| 40.00 | 20.00 |' in md
    # each protocol's settings once, in the segmentation section
    assert ('- finetune: BN + 1x1 conv head fine-tuned end to end with the '
            'model (layer decay 0.9), 4 iterations of batch 4 on 16 84x84 '
            'Fashion-MNIST mosaics, tested on 8;') in md
    assert '- linear: linear probe (BN + 1x1 conv) of the frozen model, 4 ' \
        in md
    assert md.count('iterations of batch') == 2
    # the cpu preset's iterations are its configs' schedules
    md = render(rows, [], dict(info, settings=study.PRESETS['cpu']))
    assert 'layer decay 0.9), 1000 iterations of batch 16 on 500' in md
    assert 'frozen model, 300 iterations' in md
    # --no-seg: the mIoU column says why it is empty
    for key in ('miou_finetune', 'miou_finetune_std', 'miou_linear'):
        rows[0].pop(key)
    md = render(rows, [], info)
    assert '- mIoU: no row was segmented in this invocation' in md
    assert '## Segmentation (mosaics)' not in md
