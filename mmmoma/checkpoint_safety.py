"""Let ``weights_only=True`` loads read the checkpoints of MMEngine's Runner.

torch >= 2.6 loads with ``weights_only=True``, which refuses every pickled
global outside a small allowlist. A Runner checkpoint (a MOMA pretraining
checkpoint, a fine-tuned classifier, a segmentor) keeps its weights in plain
tensors, but its ``message_hub`` holds MMEngine ``HistoryBuffer`` objects of
numpy arrays and scalars, and each buffer pickles its statistics methods as
``getattr(HistoryBuffer, 'min')``. So
``init_cfg=dict(type='Pretrained', checkpoint=MOMA_CKPT, prefix='backbone.')``
and ``tools/test.py CONFIG CKPT`` fail with ``Unsupported global``.

This module allowlists exactly those types, and nothing that can run code:

- ``mmengine.logging.HistoryBuffer`` (a plain data holder);
- numpy arrays, scalars and the dtypes of numbers and booleans (no object
  dtype), under both the numpy-1 (``numpy.core``) and numpy-2
  (``numpy._core``) module paths, so checkpoints cross numpy versions;
- ``builtins.getattr`` mapped to :func:`history_buffer_method`, which only
  returns a public method defined on ``HistoryBuffer`` and refuses anything
  else.

Foreign checkpoints still load with ``weights_only=True``; nothing here
switches to full unpickling.
"""
import contextlib
import pickle
from typing import Callable, Iterator, List, Tuple, Union

import numpy as np
import torch

_NUMERIC_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64,
                   np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                   np.float32, np.float64)

#: Whether :func:`allow_runner_checkpoints` has run in this process.
_ALLOWED = False


def history_buffer_method(obj, name: str) -> Callable:
    """``getattr`` restricted to the statistics methods of ``HistoryBuffer``.

    A pickled ``HistoryBuffer`` refers to its statistics methods (``min``,
    ``max``, ``current``, ``mean``) as ``getattr(HistoryBuffer, name)``. An
    unrestricted ``getattr`` in the allowlist would reach any attribute of
    any allowlisted object, so everything else is refused.

    Args:
        obj: Must be the ``HistoryBuffer`` class.
        name (str): A public method defined on ``HistoryBuffer``.

    Returns:
        Callable: The unbound method.
    """
    from mmengine.logging import HistoryBuffer
    if (obj is HistoryBuffer and isinstance(name, str)
            and not name.startswith('_')
            and callable(HistoryBuffer.__dict__.get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only load: getattr({obj!r}, {name!r}) is not allowed; only '
        'the public methods of mmengine HistoryBuffer (min, max, current, '
        'mean) may be looked up by a Runner checkpoint.')


SafeGlobal = Union[Callable, Tuple[Callable, str]]


def runner_checkpoint_globals() -> List[SafeGlobal]:
    """The globals a Runner checkpoint needs, in ``add_safe_globals`` form.

    Returns:
        list: Classes and functions, or ``(object, 'pickled.path')`` pairs
        where the path in the pickle differs from the object's own.
    """
    from mmengine.logging import HistoryBuffer
    multiarray = getattr(np, '_core', None) or np.core
    entries: list = [HistoryBuffer, np.ndarray, np.dtype,
                     (history_buffer_method, 'builtins.getattr')]
    for func in (multiarray.multiarray.scalar,
                 multiarray.multiarray._reconstruct):
        for package in ('numpy.core', 'numpy._core'):
            entries.append((func, f'{package}.multiarray.{func.__name__}'))
    # numpy >= 1.25 gives every dtype its own class (numpy.dtypes.*DType);
    # unpickling a dtype sets its state, which needs that class allowlisted.
    for scalar_type in _NUMERIC_DTYPES:
        dtype_cls = type(np.dtype(scalar_type))
        if dtype_cls is not np.dtype:
            entries.append(dtype_cls)
    return entries


def allow_runner_checkpoints() -> bool:
    """Add :func:`runner_checkpoint_globals` to torch's safe globals.

    Idempotent. Does nothing on a torch without ``add_safe_globals``
    (< 2.4), whose loads do not default to ``weights_only``.

    Returns:
        bool: Whether the allowlist was extended by this call.
    """
    global _ALLOWED
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if _ALLOWED or add is None:
        return False
    add(runner_checkpoint_globals())
    _ALLOWED = True
    return True


@contextlib.contextmanager
def runner_checkpoint_load() -> Iterator[None]:
    """Within this context, ``weights_only`` loads accept Runner checkpoints.

    For code that must not depend on :func:`allow_runner_checkpoints` having
    run; on a torch without ``safe_globals`` it does nothing.
    """
    scoped = getattr(torch.serialization, 'safe_globals', None)
    if scoped is None:
        yield
        return
    # Leaving the context removes its globals from torch's set: scope only
    # those not allowed already, or allow_runner_checkpoints() is undone.
    present = set(torch.serialization.get_safe_globals())
    missing = [g for g in runner_checkpoint_globals() if g not in present]
    if not missing:
        yield
        return
    with scoped(missing):
        yield
