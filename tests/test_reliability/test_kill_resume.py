"""Kill -9 mid-epoch, resume, and get the same losses; frozen teachers."""
import signal

import pytest
import torch
from reliability_utils import (config_with_hooks, iteration_losses,
                               plugin_env, run, train_cmd)

# 16 images / batch 4: 4 iterations per epoch, 3 epochs.
ITERS_PER_EPOCH = 4
EPOCHS = 3
KILL_AT = 2 * ITERS_PER_EPOCH + 2  # during epoch 3, after its 2nd iteration
COMMON = [
    f'train_cfg.max_epochs={EPOCHS}',
    # augmentations in 2 worker processes, as on a real machine
    'train_dataloader.num_workers=2',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.worker_init_fn.type=epoch_worker_init_fn',
    'randomness.deterministic=True',
]


@pytest.mark.parametrize('save_teachers', [True, False],
                         ids=['saved-teachers', 'teachers-from-init-cfg'])
def test_sigkill_then_resume_repeats_the_same_losses(tiny_run, tmp_path,
                                                     save_teachers):
    """With ``save_teachers=True`` the checkpoints carry the teachers; by
    default they leave them out and a resume re-reads them from their
    ``init_cfg`` checkpoints. Either way the resumed run ends bit-identical
    to the uninterrupted one, teachers included."""
    options = tiny_run['options'] + COMMON + [
        f'model.save_teachers={save_teachers}'
    ]
    straight = tmp_path / 'straight'
    proc = run(train_cmd(straight, options))
    assert proc.returncode == 0, proc.stdout[-3000:]
    expected = iteration_losses(straight)
    assert sorted(expected) == list(range(1, EPOCHS * ITERS_PER_EPOCH + 1))

    killed = tmp_path / 'killed'
    config = config_with_hooks(
        tmp_path, "dict(type='NonFiniteLossHook'), "
        f"dict(type='KillAtIterHook', iteration={KILL_AT})")
    proc = run(train_cmd(killed, options, config=config), env=plugin_env())
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    assert not (killed / 'epoch_3.pth').exists()
    assert (killed / 'last_checkpoint').read_text().endswith('epoch_2.pth')

    # the resumed run dumps its teachers at the end (checkpoints of the
    # default path do not hold them)
    dumped = tmp_path / 'teachers_at_end.pth'
    (tmp_path / 'dump').mkdir()
    config = config_with_hooks(
        tmp_path / 'dump', "dict(type='NonFiniteLossHook'), "
        f"dict(type='DumpTeachersHook', path={str(dumped)!r})")
    proc = run(train_cmd(killed, options, '--resume', config=config),
               env=plugin_env())
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'resumed epoch: 2, iter: 8' in proc.stdout
    resumed = iteration_losses(killed)
    # the first two epochs ran once; epoch 3 ran twice (killed, then
    # resumed from epoch 2), and the resumed run's values are the later ones
    assert sorted(resumed) == sorted(expected)
    for it in sorted(expected):
        assert resumed[it] == expected[it], (it, resumed[it], expected[it])

    # the student ends where the uninterrupted run ended, bit for bit
    a = torch.load(straight / 'epoch_3.pth', weights_only=True)['state_dict']
    b = torch.load(killed / 'epoch_3.pth', weights_only=True)['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

    # frozen means frozen, also after a resume: the teachers at the end
    # (in the checkpoint, or as the resumed run held them) are
    # bit-identical to the checkpoints they were loaded from
    teachers = torch.load(dumped, weights_only=True)
    assert any(k.startswith('teachers.') for k in b) == save_teachers
    for name, path in tiny_run['ckpts'].items():
        source = torch.load(path, weights_only=True)['state_dict']
        for key, value in source.items():
            key = name + '.' + key[len('backbone.'):]
            assert torch.equal(teachers[key], value), key
            if save_teachers:
                assert torch.equal(b['teachers.' + key], value), key


def test_without_epoch_seeds_a_resume_diverges(tiny_run, tmp_path):
    """The control: MMEngine alone reseeds once, so after a resume the
    augmentations differ and so do the losses (what EpochSeedHook fixes)."""
    options = tiny_run['options'] + COMMON + [
        'custom_hooks=[]', f'train_cfg.max_epochs={EPOCHS}'
    ]
    straight = tmp_path / 'straight'
    assert run(train_cmd(straight, options)).returncode == 0
    resumed = tmp_path / 'resumed'
    first_two = options[:-1] + ['train_cfg.max_epochs=2']
    assert run(train_cmd(resumed, first_two)).returncode == 0
    proc = run(train_cmd(resumed, options, '--resume'))
    assert proc.returncode == 0, proc.stdout[-3000:]
    a, b = iteration_losses(straight), iteration_losses(resumed)
    last = range(2 * ITERS_PER_EPOCH + 1, EPOCHS * ITERS_PER_EPOCH + 1)
    assert any(a[it] != b[it] for it in last)
