"""Make the OpenMMLab stack work on today's torch and numpy.

``import mmmoma`` calls :func:`apply_all` before anything imports mmpretrain
or mmseg. Every fix first checks whether the thing it works around is
actually broken here, and does nothing when the real component is present,
so the same code runs unchanged on a full CUDA install. The
incompatibilities, seen with torch 2.13, numpy 2.4, mmcv-lite 2.1,
mmpretrain 1.2 and mmsegmentation 1.2, and their fixes:

- ``mmcv._ext``: mmcv-lite ships no compiled ops, but mmseg imports
  ``mmcv.ops`` at module level. A stand-in module lets the import succeed and
  raises a clear error only when a compiled op is called.
- torchvision beside a CPU torch: PyPI's CUDA torchvision fails to import
  because its ``torchvision::nms`` schema is missing. Defining the schemas
  lets the pure-Python parts (transforms) import; compiled ops still raise.
- ``weights_only`` loads: torch >= 2.6 refuses MMEngine's own checkpoints
  (they pickle a ``HistoryBuffer``). The few types a Runner checkpoint
  holds are allowlisted (``mmmoma.checkpoint_safety``), so every load,
  ``Runner.resume`` included, keeps ``weights_only=True``.
- atomic checkpoints: MMEngine writes checkpoints and ``last_checkpoint``
  in place; a kill mid-write would leave a truncated file to resume from.
- numpy 2: mmcv's ``adjust_hue`` overflows for a negative hue factor, and
  ``np.in1d`` (used by mmpretrain's retrieval metrics) is gone in 2.4.
- ``mmmoma::`` config prefix: MMEngine resolves ``package::path`` only for
  the packages in its own table, and would tag every base loaded that way
  with ``_scope_='mmmoma'``, a registry scope that does not exist.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Callable

import numpy as np
import torch

from .fileio import atomic_write

#: Names of the fixes that :func:`apply_all` found necessary and applied.
APPLIED: list = []


# --------------------------------------------------------------------- mmcv
def _missing_op(name: str) -> Callable:
    if name.startswith('__'):
        # Module introspection (inspect, pickle) asks for dunders.
        raise AttributeError(name)

    def op(*args, **kwargs):
        raise RuntimeError(
            f'mmcv compiled op "{name}" was called, but the installed mmcv '
            'has no compiled ops (mmcv-lite). Install the full mmcv build '
            'for your torch/CUDA to use it.')

    op.__name__ = name
    return op


def fix_mmcv_ext() -> bool:
    """Insert a stand-in ``mmcv._ext`` when mmcv has no compiled ops."""
    if 'mmcv._ext' in sys.modules:
        return False
    try:
        if importlib.util.find_spec('mmcv') is None:
            return False
        if importlib.util.find_spec('mmcv._ext') is not None:
            return False
    except (ImportError, ValueError):
        return False
    stub = types.ModuleType('mmcv._ext')
    stub.__doc__ = 'Stand-in for mmcv compiled ops (installed by mmmoma).'
    stub.__getattr__ = _missing_op  # module-level __getattr__ (PEP 562)
    stub.__mmmoma_stub__ = True
    # A spec without a loader: find_spec/pkgutil (mmengine's
    # mmcv_full_available) then report "no compiled ops" instead of raising.
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    sys.modules['mmcv._ext'] = stub
    return True


# --------------------------------------------------------------- torchvision
def fix_torchvision() -> bool:
    """Let a torchvision whose compiled ops do not load into torch import.

    The schemas come from the top-level ``_mmmoma_torchvision`` module, the
    one definition this fix and the venv's start-up hook share.
    """
    import _mmmoma_torchvision as tv
    if 'torchvision' in sys.modules or importlib.util.find_spec(
            'torchvision') is None or tv.compiled_ops_load():
        return False
    # Submodules a failed ``import torchvision`` may have left behind.
    for name in [m for m in sys.modules if m.startswith('torchvision.')]:
        del sys.modules[name]
    return tv.define_schemas()


# ------------------------------------------------------ weights_only loads
def _torch_defaults_to_weights_only() -> bool:
    major, minor = (int(v) for v in torch.__version__.split('.')[:2])
    return (major, minor) >= (2, 6)


def fix_weights_only_resume() -> bool:
    """Make MMEngine's local loads, ``Runner.resume`` included, weights-only.

    MMEngine's loader calls ``torch.load`` without ``weights_only``, so what
    it unpickles depends on torch's default (and on
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``). Here every local load, the
    resume of the project's own checkpoints too, passes
    ``weights_only=True`` with the Runner types of
    :mod:`mmmoma.checkpoint_safety` allowed, so that a file given to
    ``--resume`` or ``load_from`` cannot run code.
    """
    if getattr(torch.serialization, 'add_safe_globals', None) is None:
        return False  # torch < 2.4: no allowlist, Runner types cannot load
    from mmengine.runner import checkpoint as ckpt_mod
    from .checkpoint_safety import runner_checkpoint_load
    current = ckpt_mod.CheckpointLoader._schemes.get('')
    if getattr(current, '__mmmoma_patched__', False):
        return False

    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        with runner_checkpoint_load():
            return torch.load(
                filename, map_location=map_location, weights_only=True)

    load_from_local.__mmmoma_patched__ = True
    ckpt_mod.CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    return True


def fix_runner_checkpoints() -> bool:
    """Let ``weights_only=True`` loads read MMEngine Runner checkpoints.

    ``load_from``, ``tools/test.py`` and ``Pretrained`` inits of a MOMA
    checkpoint then work without unpickling arbitrary objects; see
    :mod:`mmmoma.checkpoint_safety` for exactly what is allowed.
    """
    if not _torch_defaults_to_weights_only():
        return False
    from .checkpoint_safety import allow_runner_checkpoints
    return allow_runner_checkpoints()


# ------------------------------------------------------- atomic checkpoints
def _open_writes_atomically(file, mode: str = 'r', *args, **kwargs):
    """``open`` whose plain truncating writes go through atomic_write."""
    if (isinstance(file, (str, os.PathLike)) and 'w' in mode
            and '+' not in mode and not args):
        return atomic_write(os.fspath(file), mode, **kwargs)
    return open(file, mode, *args, **kwargs)


def fix_atomic_checkpoints() -> bool:
    """Write checkpoints and ``last_checkpoint`` via a temporary + rename.

    MMEngine writes a checkpoint straight to its final name
    (``LocalBackend.put``) and then overwrites ``last_checkpoint`` in place,
    so a job killed mid-write leaves a truncated file that a later
    ``--resume`` picks up. Both modules' ``open`` becomes
    :func:`_open_writes_atomically`; reads are unchanged.
    """
    from mmengine.fileio.backends import local_backend
    from mmengine.hooks import checkpoint_hook
    modules = (local_backend, checkpoint_hook)
    if all(getattr(m, 'open', None) is _open_writes_atomically
           for m in modules):
        return False
    for module in modules:
        module.open = _open_writes_atomically
    return True


# -------------------------------------------------------------------- numpy
def _adjust_hue(img: np.ndarray,
                hue_factor: float,
                backend: str = None) -> np.ndarray:
    """mmcv.adjust_hue with numpy-1 wrap-around for negative factors."""
    import cv2
    from mmcv.image import photometric
    from PIL import Image
    if backend is None:
        backend = photometric.imread_backend
    if backend not in ('cv2', 'pillow'):
        raise ValueError(f'backend: {backend} is not supported. '
                         "Supported backends are 'cv2', 'pillow'")
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor:{hue_factor} is not in [-0.5, 0.5].')
    if not (isinstance(img, np.ndarray) and img.ndim in (2, 3)):
        raise TypeError('img should be ndarray with dim=[2 or 3].')
    # int() truncates toward zero like numpy-1's C cast; % 256 wraps.
    shift = np.uint8(int(hue_factor * 255) % 256)
    if backend == 'pillow':
        assert img.dtype == np.uint8, 'Pillow backend only support uint8 type'
        pil = Image.fromarray(img[..., ::-1], mode='RGB')
        h, s, v = pil.convert('HSV').split()
        np_h = np.array(h, dtype=np.uint8) + shift  # uint8 add wraps
        out = Image.merge('HSV', (Image.fromarray(np_h, 'L'), s, v))
        return np.array(out.convert('RGB'), dtype=img.dtype)[..., ::-1]
    dtype = img.dtype
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV_FULL)
    h, s, v = cv2.split(hsv)
    h = h.astype(np.uint8) + shift
    out = cv2.cvtColor(cv2.merge([h, s, v]), cv2.COLOR_HSV2BGR_FULL)
    return out.astype(dtype)


def fix_adjust_hue() -> bool:
    """Replace mmcv's adjust_hue if it overflows under numpy 2."""
    try:
        import mmcv
        from mmcv.image import photometric
    except ImportError:
        return False
    probe = np.full((2, 2, 3), 100, dtype=np.uint8)
    try:
        photometric.adjust_hue(probe, -0.1)
        return False
    except OverflowError:
        pass
    _adjust_hue.__wrapped_original__ = photometric.adjust_hue
    photometric.adjust_hue = _adjust_hue
    mmcv.adjust_hue = _adjust_hue
    mmcv.image.adjust_hue = _adjust_hue
    return True


def fix_np_in1d() -> bool:
    """Restore ``np.in1d`` (removed in numpy 2.4) as ``np.isin`` on a ravel."""
    if hasattr(np, 'in1d'):
        return False

    def in1d(ar1, ar2, assume_unique=False, invert=False):
        return np.isin(
            np.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)

    np.in1d = in1d
    return True


# ------------------------------------------------------ mmmoma:: configs
def config_roots() -> list:
    """The folder (at most one) that ``mmmoma::`` config paths resolve in.

    A regular install ships the repository's ``configs/`` as
    ``mmmoma/.mim/configs`` (the MMPretrain layout); an editable install or a
    source tree on ``PYTHONPATH`` uses ``configs/`` beside the package.

    Returns:
        list[str]: The folder, or an empty list when neither exists.
    """
    package_dir = os.path.dirname(os.path.abspath(__file__))
    shipped = os.path.join(package_dir, '.mim', 'configs')
    if os.path.isdir(shipped):
        return [shipped]
    repo = os.path.dirname(package_dir)
    source = os.path.join(repo, 'configs')
    # Only a source tree: site-packages may hold another project's configs/.
    if os.path.isdir(source) and os.path.isfile(
            os.path.join(repo, 'pyproject.toml')):
        return [source]
    return []


def fix_config_prefix() -> bool:
    """Resolve ``_base_ = 'mmmoma::dir/name.py'`` to this package's configs.

    The base keeps no ``_scope_``: mmmoma registers into MMPretrain's and
    MMSeg's registries, so the config's own ``default_scope`` applies.
    """
    from mmengine.config import Config
    original = Config._get_cfg_path
    if getattr(original, '__mmmoma_patched__', False):
        return False

    def _get_cfg_path(cfg_path: str, filename: str):
        package, sep, relative = cfg_path.partition('::')
        if not (sep and package == 'mmmoma'):
            return original(cfg_path, filename)
        roots = config_roots()
        for root in roots:
            path = os.path.join(root, relative)
            if os.path.isfile(path):
                return path, None
        raise FileNotFoundError(
            f'config "{cfg_path}" (in {filename}) not found: no file '
            f'"{relative}" under {roots or "any mmmoma config folder"}')

    _get_cfg_path.__mmmoma_patched__ = True
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    return True


_FIXES = (
    ('mmcv_ext', fix_mmcv_ext),
    ('torchvision', fix_torchvision),
    ('weights_only_resume', fix_weights_only_resume),
    ('runner_checkpoints', fix_runner_checkpoints),
    ('atomic_checkpoints', fix_atomic_checkpoints),
    ('adjust_hue', fix_adjust_hue),
    ('np_in1d', fix_np_in1d),
    ('config_prefix', fix_config_prefix),
)


def apply_all() -> list:
    """Apply every fix that this environment needs (idempotent).

    Returns:
        list[str]: The names of the fixes applied by this call.
    """
    applied = []
    for name, fix in _FIXES:
        if fix():
            applied.append(name)
    APPLIED.extend(applied)
    return applied
