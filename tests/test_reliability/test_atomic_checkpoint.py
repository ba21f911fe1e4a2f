"""A kill during a checkpoint write leaves the previous checkpoint whole."""
import os
import signal
import sys
import textwrap

import pytest
import torch
from reliability_utils import ROOT, run

# A file object that writes half of what it is given, then SIGKILLs the
# process, as a node failure during a write would.
DIES_HALFWAY = textwrap.dedent('''
    import os, signal

    class DiesHalfway:
        def __init__(self, f):
            self.f = f
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)
''')

# Save checkpoint A, then start saving B over it and die halfway through B.
SCRIPT = DIES_HALFWAY + textwrap.dedent('''
    import sys
    import torch
    import mmmoma
    from mmengine.fileio.backends import local_backend
    from mmengine.runner.checkpoint import save_checkpoint

    path, atomic = sys.argv[1], sys.argv[2] == '1'
    if not atomic:  # the control: MMEngine's own, in-place write
        local_backend.open = open
    save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, path)

    real_fdopen, real_open = os.fdopen, local_backend.open
    os.fdopen = lambda *a, **k: DiesHalfway(real_fdopen(*a, **k))
    if not atomic:
        local_backend.open = lambda *a, **k: DiesHalfway(real_open(*a, **k))
    save_checkpoint({'state_dict': {'w': torch.ones(1000)}}, path)
''')


@pytest.mark.parametrize('atomic', [True, False], ids=['mmmoma', 'control'])
def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path, atomic):
    path = tmp_path / 'epoch_1.pth'
    proc = run([sys.executable, '-c', SCRIPT, path, int(atomic)],
               env={'PYTHONPATH': str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    if atomic:
        state = torch.load(path, weights_only=True)['state_dict']
        assert torch.equal(state['w'], torch.zeros(1000))  # A, whole
        # B's half-written bytes sit in a hidden temporary file
        assert [p.name for p in tmp_path.iterdir() if p != path] != []
    else:  # without mmmoma's fix the kill leaves a truncated checkpoint
        with pytest.raises(Exception):
            torch.load(path, weights_only=True)


def test_atomic_write_replaces_only_on_success(tmp_path):
    from mmmoma.fileio import atomic_write
    path = tmp_path / 'last_checkpoint'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(path), 'w') as f:
            f.write('new')
            raise RuntimeError('interrupted')
    assert path.read_text() == 'old'
    assert list(tmp_path.iterdir()) == [path]  # the temporary is gone
    umask = os.umask(0o022)  # the new file gets open()'s 0o666 & ~umask
    try:
        with atomic_write(str(path), 'w') as f:
            f.write('new')
    finally:
        os.umask(umask)
    assert path.read_text() == 'new'
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


# Two epochs of a toy model through MMEngine's Runner and CheckpointHook;
# in epoch 2 the write of `last_checkpoint` dies halfway.
RUNNER_SCRIPT = DIES_HALFWAY + textwrap.dedent('''
    import builtins, sys
    import torch
    import mmmoma
    from mmengine.hooks import Hook, checkpoint_hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    work_dir, atomic = sys.argv[1], sys.argv[2] == '1'

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 1)
        def forward(self, inputs, data_samples=None, mode='tensor'):
            return {'loss': self.w(inputs).pow(2).mean()}

    class DieInLastCheckpointWrite(Hook):
        def before_train_epoch(self, runner):
            if runner.epoch != 1:
                return
            if atomic:  # mmmoma's write goes through os.fdopen
                real = os.fdopen
                os.fdopen = lambda fd, mode='r', *a, **k: (
                    DiesHalfway(real(fd, mode, *a, **k)) if mode == 'w'
                    else real(fd, mode, *a, **k))
            else:  # the control: MMEngine's own, in-place write
                checkpoint_hook.open = lambda *a, **k: DiesHalfway(
                    builtins.open(*a, **k))

    loader = torch.utils.data.DataLoader(
        torch.ones(4, 1), batch_size=2,
        collate_fn=lambda b: dict(inputs=torch.stack(b)))
    runner = Runner(
        model=Toy(), work_dir=work_dir, train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=[DieInLastCheckpointWrite()])
    runner.train()
''')


@pytest.mark.parametrize('atomic', [True, False], ids=['mmmoma', 'control'])
def test_kill_while_checkpoint_hook_writes_last_checkpoint(tmp_path, atomic):
    """``last_checkpoint`` names a whole checkpoint after a kill during its
    own write by MMEngine's CheckpointHook, so ``--resume`` finds one."""
    proc = run([sys.executable, '-c', RUNNER_SCRIPT, tmp_path, int(atomic)],
               env={'PYTHONPATH': str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    # epoch 2's checkpoint is whole: the kill came after it, in the pointer
    from mmmoma.fileio import load_checkpoint
    assert load_checkpoint(str(tmp_path / 'epoch_2.pth'))['meta']['epoch'] == 2
    pointer = (tmp_path / 'last_checkpoint').read_text()
    if atomic:  # still the previous, whole pointer
        assert pointer == str(tmp_path / 'epoch_1.pth')
    else:  # without mmmoma's fix: half a path, which names no file
        assert pointer == str(tmp_path / 'epoch_2.pth')[:len(pointer)]
        assert len(pointer) < len(str(tmp_path / 'epoch_2.pth'))
