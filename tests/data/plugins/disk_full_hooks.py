"""A full disk for tests/test_reliability/test_disk_full.py (not mmmoma).

Loaded by the training subprocess through
``custom_imports=dict(imports=['mmmoma', 'disk_full_hooks'])`` with this
folder on ``PYTHONPATH``.
"""
import errno
import os

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class FillsUp:
    """A file whose writes stop with ENOSPC after ``room`` bytes."""

    def __init__(self, f, room: int) -> None:
        self.f = f
        self.room = room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.f.write(data[:self.room])
            self.f.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


@HOOKS.register_module()
class DiskFullAtEpochHook(Hook):
    """From the checkpoint of epoch ``epoch`` on, the disk has ``room``
    bytes left for each file opened with ``os.fdopen`` (what
    :func:`mmmoma.fileio.atomic_write` writes through)."""

    def __init__(self, epoch: int, room: int = 4096) -> None:
        self.epoch = epoch
        self.room = room

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint['meta']['epoch'] != self.epoch:
            return
        real_fdopen = os.fdopen
        os.fdopen = lambda *a, **k: FillsUp(real_fdopen(*a, **k), self.room)
