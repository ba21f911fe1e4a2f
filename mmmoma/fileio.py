"""One way to write files and one way to read checkpoints, everywhere.

- :func:`atomic_write` / :func:`atomic_save`: a file appears complete or
  not at all (temporary file in the same folder, fsync, rename), with the
  mode a plain ``open`` would give it. Every place that saves a file goes
  through them: MMEngine's checkpoints (patched in :mod:`mmmoma.compat`),
  the converters, the demo's published weights. The scene generator
  (:mod:`mmmoma.datasets.fmnist_scenes`) builds a whole folder beside its
  target and renames it into place.
- :func:`load_checkpoint`: the one reading policy. ``weights_only=True``
  always, so that a foreign file cannot run code, with the MMEngine Runner
  types of :mod:`mmmoma.checkpoint_safety` allowed; errors name the config
  key or argument the path came from. :func:`check_finite` refuses weights
  holding NaN or Inf when they are read, not at the first loss.
"""
import contextlib
import os
import pickle
import re
import tempfile
import zipfile
from typing import Any, Dict, Iterator, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_safety import runner_checkpoint_load

#: Prefixes that MMEngine's CheckpointLoader fetches (not local paths).
REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://',
                   'mmcls://', 'torchvision://', 'modelzoo://', 'pavi://')


def _default_file_mode() -> int:
    """The mode ``open(path, 'w')`` would give a new file (0o666 - umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', **kwargs) -> Iterator:
    """Open ``path`` for writing; it appears complete or not at all.

    The data go to a temporary file in the same folder, which is flushed,
    fsynced and renamed over ``path`` (``os.replace`` is atomic on POSIX)
    only after the whole write succeeded. A process killed mid-write leaves
    the previous ``path`` untouched and at most a stray ``.tmp`` file.

    Args:
        path (str): The final file.
        mode (str): A writing mode of ``open`` (``'w'`` or ``'wb'``).
            Defaults to ``'wb'``.
        **kwargs: More arguments of ``open`` (``encoding``...).
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        cause = _os_error_in(err)
        if cause is None:
            raise
        # torch.save reports a failed write as "unexpected pos 704 vs 598";
        # say which file and why, and that the old one is still whole.
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        raise OSError(
            cause.errno,
            f'{path} could not be written: {reason} ({cause}). The previous '
            f'{os.path.basename(path)}, if any, is unchanged and the '
            'partial temporary file was removed; free space (or fix the '
            'cause) and run again, with --resume for training.') from err
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _os_error_in(err: BaseException) -> Optional[OSError]:
    """The ``OSError`` that ``err`` is or was raised from, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`.

    Args:
        obj: What to save; plain values and tensors keep the file readable
            by :func:`load_checkpoint` without any allowlist.
        path (str): The output file; its folder must exist.
    """
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)


def load_checkpoint(path: str,
                    name: str = 'checkpoint',
                    mmap: bool = False) -> Any:
    """Read a checkpoint without running any code it may pickle.

    Local files go to ``torch.load(weights_only=True)`` directly, so that
    the load stays safe whatever torch's default; MMEngine Runner
    checkpoints pass through the allowlist of
    :mod:`mmmoma.checkpoint_safety`. Remote files are fetched by MMEngine's
    loader. The result is on the CPU.

    Args:
        path (str): A local file or a URL MMEngine can fetch.
        name (str): The config key or argument ``path`` came from, named in
            every error (e.g. ``'teachers.mae.init_cfg.checkpoint'``).
            Defaults to ``'checkpoint'``.
        mmap (bool): Map the tensors of a local file in torch's zip format
            instead of reading them: for a look at keys and shapes, which
            then costs no tensor I/O. Defaults to False.

    Returns:
        The unpickled object (usually a dict with ``state_dict``).

    Raises:
        ValueError: The file is missing, corrupt, or pickles objects that a
            ``weights_only`` load refuses.
    """
    try:
        with runner_checkpoint_load():
            if path.startswith(REMOTE_PREFIXES):
                return CheckpointLoader.load_checkpoint(
                    path, map_location='cpu')
            local = os.path.expanduser(path)
            return torch.load(
                local,
                map_location='cpu',
                weights_only=True,
                mmap=mmap and zipfile.is_zipfile(local))
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
        if found:
            raise ValueError(
                f'{name}={path!r} holds pickled Python objects '
                f'({found.group(1)}), which a weights_only=True load refuses '
                f'(torch: "{found.group(0)}") so that a foreign checkpoint '
                'cannot run code. Allowed: '
                'tensors, numbers, strings and containers, and the MMEngine '
                'Runner types of mmmoma.checkpoint_safety. If you trust the '
                'file, re-save its weights alone (a MOMA checkpoint: tools/'
                'model_converters/extract_student.py) and point the config '
                'at that file.') from err
        # torch's own text advises weights_only=False: keep only the cause.
        cause = text.split('WeightsUnpickler error:')[-1].strip()
        cause = cause.splitlines()[0] if cause else type(err).__name__
        raise ValueError(
            f'{name}={path!r} could not be unpickled with '
            f'weights_only=True ({cause}): the file is corrupt or holds '
            'objects that torch refuses. Allowed: a complete torch.save file '
            'of tensors, numbers, strings and containers.') from err
    except Exception as err:  # noqa: BLE001 - re-raised with the argument
        raise ValueError(
            f'{name}={path!r} could not be loaded with '
            f'weights_only=True ({type(err).__name__}: {err}). Allowed: a '
            'complete torch.save file of tensors.') from err


#: How many non-finite tensors :func:`check_finite` names.
_SHOWN_TENSORS = 5


def check_finite(state: Dict[str, Any], what: str) -> None:
    """Fail when a floating-point tensor of ``state`` holds NaN or Inf.

    A damaged file, or one saved after a step that diverged, would
    otherwise load silently and show only as a NaN loss, or as
    meaningless teacher targets.

    Args:
        state (dict[str, torch.Tensor]): Weights, by name; other values
            are skipped.
        what (str): Where ``state`` came from, for the message (e.g.
            ``"teachers.mae.init_cfg.checkpoint='t.pth'"``).

    Raises:
        ValueError: Naming the first tensors with NaN or Inf and how many
            of their values are.
    """
    bad = []
    for name, value in state.items():
        if not (isinstance(value, torch.Tensor)
                and value.is_floating_point()):
            continue
        finite = torch.isfinite(value)
        if bool(finite.all()):
            continue
        nan = int(torch.isnan(value).sum())
        inf = value.numel() - int(finite.sum()) - nan
        bad.append(f'{name} ({nan} NaN, {inf} Inf of {value.numel()} '
                   'values)')
    if bad:
        shown = '; '.join(bad[:_SHOWN_TENSORS])
        more = (f' (+{len(bad) - _SHOWN_TENSORS} more tensors)'
                if len(bad) > _SHOWN_TENSORS else '')
        raise ValueError(
            f'{what} holds weights with NaN or Inf: {shown}{more}. Allowed: '
            'finite weights only; the file is damaged or was saved after '
            'training diverged, use an earlier checkpoint.')
