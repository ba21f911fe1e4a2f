"""A kill during a checkpoint write leaves the previous checkpoint whole."""
import os
import signal
import sys
import textwrap

import pytest
import torch
from reliability_utils import ROOT, run

# Save checkpoint A, then start saving B over it and SIGKILL the process
# when half of B's bytes are written, as a node failure would.
SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import torch
    import mmmoma
    from mmengine.fileio.backends import local_backend
    from mmengine.runner.checkpoint import save_checkpoint

    path, atomic = sys.argv[1], sys.argv[2] == '1'
    if not atomic:  # the control: MMEngine's own, in-place write
        local_backend.open = open
    save_checkpoint({'state_dict': {'w': torch.zeros(1000)}}, path)

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
