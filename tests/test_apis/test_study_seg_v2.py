"""The study's opt-in segmentation v2: --seg-protocol picks the mosaics and
the v2 config; the default keeps the scenes, their config and run folder.
The training tool is replaced by a stub that records its command."""
import json
import os
import os.path as osp

import pytest

from mmmoma.apis.common import Progress
from mmmoma.apis.study import PRESETS, parse_args, segment as seg_api
from mmmoma.apis.study.pipeline import _share_cores, pick_seg_protocol
from mmmoma.apis.study.v2 import seg_settings
from mmmoma.apis.study.rows import SEG_CONFIG, SEG_PROTOCOLS, SEG_V2

V2_PROTOCOLS = sorted(p for p in SEG_PROTOCOLS if p != 'scenes')


@pytest.fixture
def fake_train(monkeypatch) -> list:
    """``run_tool`` of the study's segment step: records the command and
    writes the validation mIoU that tools/train.py would log."""
    commands = []

    def run_tool(cmd, log_path, what):
        commands.append(cmd)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        scalars = osp.join(work_dir, '20240101_000000', 'vis_data',
                           'scalars.json')
        os.makedirs(osp.dirname(scalars))
        with open(scalars, 'w') as f:
            f.write(json.dumps({'mIoU': 31.5, 'step': 4}) + '\n')

    monkeypatch.setattr(seg_api, 'run_tool', run_tool)
    return commands


def test_seg_protocol_flag_picks_one_protocol():
    assert parse_args(['--preset', 'cpu-v1']).seg_protocol is None
    args = parse_args(['--preset', 'smoke', '--seg-protocol',
                       'mosaics-linear'])
    assert args.seg_protocol == 'mosaics-linear'
    with pytest.raises(SystemExit):
        parse_args(['--seg-protocol', 'mosaics'])
    # v1 presets segment the scenes; v2 presets both mosaic protocols
    for name, preset in PRESETS.items():
        if preset['protocol'] == 1:
            assert 'protocol' not in preset['seg'], name
        else:
            assert preset['seg']['protocols'] == [
                'mosaics-finetune', 'mosaics-linear'], name
            assert set(preset['seg']['protocols']) < set(V2_PROTOCOLS)


def test_segmentation_runs_at_once_are_not_in_their_settings(monkeypatch):
    # cpu: two at once, a core each; how many ran is not in the cache key
    preset = PRESETS['cpu']
    assert preset['seg']['jobs'] == 2 and preset['jobs'] == 1
    assert 'jobs' not in seg_settings(preset, 'mosaics-finetune')
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    _share_cores(2, 'CPU (2 cores)', user_threads=False)
    assert os.environ['OMP_NUM_THREADS'] == '1'
    _share_cores(1, 'CPU (2 cores)', user_threads=False)
    assert 'OMP_NUM_THREADS' not in os.environ  # all cores to one run
    _share_cores(2, 'NVIDIA H100', user_threads=False)
    assert 'OMP_NUM_THREADS' not in os.environ
    monkeypatch.setenv('OMP_NUM_THREADS', '7')
    _share_cores(2, 'CPU (2 cores)', user_threads=True)
    assert os.environ['OMP_NUM_THREADS'] == '7'  # the user's


def test_pick_seg_protocol_per_preset():
    # v2: its rows and seeds, under the one protocol
    seg = pick_seg_protocol(PRESETS['cpu'], 'cpu', 'mosaics-linear')
    assert seg == dict(PRESETS['cpu']['seg'], protocols=['mosaics-linear'])
    # v1: the scenes are its own; a mosaics protocol brings v2's sizes and
    # the protocol's config's iterations
    assert pick_seg_protocol(PRESETS['cpu-v1'], 'cpu-v1',
                             'scenes') is PRESETS['cpu-v1']['seg']
    seg = pick_seg_protocol(PRESETS['cpu-v1'], 'cpu-v1', 'mosaics-finetune')
    assert seg == dict(SEG_V2['cpu'], iters=1000, protocol='mosaics-finetune')
    seg = pick_seg_protocol(PRESETS['gpu-v1'], 'gpu-v1', 'mosaics-upernet')
    assert seg['iters'] == 300 and seg['workers'] == SEG_V2['gpu']['workers']


@pytest.mark.parametrize('protocol', V2_PROTOCOLS)
def test_v2_protocol_trains_its_config_on_the_mosaics(
        protocol, fake_fmnist, tmp_path, fake_train):
    preset = dict(PRESETS['cpu-v1'],
                  seg=dict(SEG_V2['smoke'], protocol=protocol))
    progress = Progress('test')
    work = str(tmp_path)
    data = seg_api.prepare_seg_data(work, preset, str(fake_fmnist),
                                    progress)
    assert data == osp.join(work, 'seg-v2', 'mosaics')
    meta = json.load(open(osp.join(data, 'meta.json')))
    assert meta['splits']['train']['num_images'] == 16
    assert meta['classes'][0] == 'background'
    stamp = osp.getmtime(osp.join(data, 'meta.json'))
    assert seg_api.prepare_seg_data(work, preset, str(fake_fmnist),
                                    progress) == data
    assert osp.getmtime(osp.join(data, 'meta.json')) == stamp  # reused
    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'')
    result = seg_api.segment('teacher-mocov3', str(ckpt), data, work,
                             preset, False, progress)
    assert result['miou'] == 31.5
    (cmd, ) = fake_train
    assert cmd[2] == SEG_PROTOCOLS[protocol]['config']
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, f'seg-{protocol}', 'teacher-mocov3')
    assert f'train_dataloader.dataset.data_root={data}' in cmd
    assert 'train_cfg.max_iters=4' in cmd


def test_default_protocol_keeps_the_scenes_config_and_folder(
        tmp_path, fake_train):
    preset = PRESETS['cpu-v1']
    scenes = tmp_path / 'scenes'
    scenes.mkdir()
    (scenes / 'meta.json').write_text(json.dumps({'splits': {}}))
    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'')
    seg_api.segment('teacher-mae', str(ckpt), str(scenes), str(tmp_path),
                    preset, False, Progress('test'))
    (cmd, ) = fake_train
    assert cmd[2] == SEG_CONFIG
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        str(tmp_path), 'seg', 'teacher-mae')
