"""mmmoma.apis.steps: the training step of the demo and the study, without
training."""
import json

import torch

from mmmoma.apis import steps
from mmmoma.apis.demo import PRESETS


def _scalars(run_dir, entries, partial=''):
    path = run_dir / '20240101_000000' / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as f:
        for entry in entries:
            f.write(json.dumps(entry) + '\n')
        f.write(partial)


def test_monitor_reads_knn_with_its_epoch(tmp_path):
    monitor = steps.MonitorReader(str(tmp_path))
    assert monitor.read() == []  # the run has not started
    _scalars(tmp_path, [
        {'knn/top1': 10.004, 'knn/top5': 50.0, 'step': 0},  # eval_at_start
        {'loss': 1.0, 'epoch': 1, 'iter': 1, 'step': 1},
        {'loss': 0.9, 'epoch': 1, 'iter': 2, 'step': 2},
        {'knn/top1': 51.20000243186951, 'knn/top5': 95.2, 'step': 2},
        {'loss': 0.8, 'epoch': 2, 'iter': 3, 'step': 3},
    ], partial='{"knn/top1": 53.6')  # a line still being written
    assert monitor.read() == [
        dict(epoch=0, top1=10.0), dict(epoch=1, top1=51.2)
    ]
    _scalars(tmp_path, [], partial='00001, "step": 4}\n')
    assert monitor.read() == [dict(epoch=2, top1=53.6)]
    assert monitor.read() == []
    assert [p['epoch'] for p in monitor.points] == [0, 1, 2]


def test_step_options_in_order():
    preset = dict(PRESETS['smoke'])
    opts = steps.step_options('moma', preset, '/data',
                              dict(mocov3='m.pth', mae='a.pth'))
    keys = list(opts)
    assert keys[:4] == [
        'train_dataloader.batch_size', 'train_dataloader.num_workers',
        'train_dataloader.persistent_workers',
        'train_dataloader.dataset.num_samples'
    ]
    assert opts['train_cfg.max_epochs'] == 2
    assert opts['param_scheduler.1.T_max'] == 1
    assert opts['default_hooks.logger.interval'] == 1  # 512 / 128 = 4 iters
    assert opts['custom_hooks.0.val_dataloader.dataset.data_root'] == '/data'
    assert keys[-8:-4] == [
        'model.teachers.mocov3.init_cfg._delete_',
        'model.teachers.mocov3.init_cfg.type',
        'model.teachers.mocov3.init_cfg.checkpoint',
        'model.teachers.mocov3.init_cfg.prefix'
    ]
    assert opts['model.teachers.mae.init_cfg.checkpoint'] == 'a.pth'
    assert not any(k.startswith('model.') for k in steps.step_options(
        'mae', preset, None, {}))


def test_publish_keeps_weights_and_meta(tmp_path):
    from mmengine.logging import MessageHub
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    last = run_dir / 'epoch_1.pth'
    state = {'backbone.w': torch.arange(4.)}
    # what a Runner saves: weights and pickled MMEngine objects
    torch.save(dict(state_dict=state, message_hub=MessageHub.get_instance(
        'test_publish').state_dict(), meta=dict(epoch=1)), last)
    (run_dir / 'last_checkpoint').write_text(str(last))
    out = tmp_path / 'checkpoints' / 'mae.pth'
    steps.publish(str(run_dir), str(out), dict(epochs=1))
    ckpt = torch.load(out, weights_only=True)
    assert torch.equal(ckpt['state_dict']['backbone.w'], state['backbone.w'])
    assert ckpt['meta'] == dict(epochs=1, source='../run/epoch_1.pth')
    assert steps.read_meta(str(out)) == ckpt['meta']


def test_a_broken_published_file_is_retrained(tmp_path):
    assert steps.read_meta(str(tmp_path / 'missing.pth')) is None
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    assert steps.read_meta(str(broken)) is None
    torch.save({'state_dict': {}}, tmp_path / 'no_meta.pth')
    assert steps.read_meta(str(tmp_path / 'no_meta.pth')) is None
