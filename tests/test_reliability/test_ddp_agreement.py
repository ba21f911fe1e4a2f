"""2 gloo processes x 2 images train like 1 process x 4 images."""
import sys

import pytest
import torch
from reliability_utils import (ROOT, CONFIG, iteration_losses, key_bias, run,
                               train_cmd)

# No random augmentation: each process draws augmentations from its own
# generator, so only the masks (keyed by sample) and the data order can
# match across process layouts; that is what this test pins down.
NO_AUGMENTATION = """
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=32),
    dict(type='PackInputs'),
]))
"""
COMMON = [
    'train_cfg.max_epochs=2',  # 16 images / 4 per step: 8 steps
    'train_dataloader.sampler.seed=0',
    'randomness.deterministic=True',
    'randomness.diff_rank_seed=True',  # the ImageNet configs' setting
]


SGD = '''
optim_wrapper = dict(optimizer=dict(
    _delete_=True, type='SGD', lr=0.05, momentum=0.9, weight_decay=0.05))
'''


@pytest.mark.parametrize('optimizer', ['AdamW', 'SGD'])
def test_two_processes_match_one_process(tiny_run, tmp_path, optimizer,
                                         free_port):
    config = tmp_path / 'tiny_no_augmentation.py'
    config.write_text(f'_base_ = {str(CONFIG)!r}\n{NO_AUGMENTATION}' +
                      (SGD if optimizer == 'SGD' else ''))
    one = tmp_path / 'one'
    proc = run(train_cmd(one, tiny_run['options'] + COMMON +
                         ['train_dataloader.batch_size=4'], config=config))
    assert proc.returncode == 0, proc.stdout[-3000:]

    two = tmp_path / 'two'
    proc = run([
        'bash', ROOT / 'tools/dist_train.sh', config, 2, '--work-dir', two,
        '--cfg-options', *tiny_run['options'], *COMMON,
        'train_dataloader.batch_size=2'
    ],
               env={
                   'PYTHON': sys.executable,
                   'PORT': str(free_port),
                   'OMP_NUM_THREADS': '1'
               })
    assert proc.returncode == 0, proc.stdout[-3000:]

    a = torch.load(one / 'epoch_2.pth', weights_only=True)['state_dict']
    b = torch.load(two / 'epoch_2.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys()
    trained = [k for k in a if k.startswith(('backbone.', 'necks.'))]
    assert trained
    diff = {}
    for k in trained:
        delta = (a[k].float() - b[k].float()).abs()
        if optimizer == 'AdamW':
            # An attention key bias has a true gradient of exactly 0
            # (softmax ignores a shift shared by all keys); Adam divides its
            # rounding noise by its own tiny RMS and moves it by ~lr either
            # way, in 1 process as in 2. Every other weight must agree.
            delta[key_bias(k, delta)] = 0
        diff[k] = delta.max().item()
    worst = max(diff, key=diff.get)
    assert diff[worst] <= 1e-5, (worst, diff[worst])
    # and the student did move: equal weights are not trivially equal
    first = torch.load(one / 'epoch_1.pth', weights_only=True)['state_dict']
    assert any(not torch.equal(first[k], a[k]) for k in trained)
    # rank 0 logs its own half-batch loss, so only the step count compares
    assert len(iteration_losses(one)) == len(iteration_losses(two)) == 8
