"""Shared fixtures: generated data, no downloads."""
import gzip
import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
_SCOPE_IDS = itertools.count()  # a new DefaultScope name for every test
FMNIST_STEMS = ('train-images-idx3', 'train-labels-idx1', 't10k-images-idx3',
                't10k-labels-idx1')


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'needs_fmnist: uses Debian\'s Fashion-MNIST idx files; '
        'skipped, with the install command, where they are absent')


@pytest.hookimpl(tryfirst=True)  # before any fixture reads the files
def pytest_runtest_setup(item):
    """Skip ``needs_fmnist`` tests, saying why, without the real files."""
    if item.get_closest_marker('needs_fmnist') is None:
        return
    from mmmoma.datasets.fashion_mnist import DEFAULT_ROOT
    missing = [
        f'{stem}-ubyte.gz' for stem in FMNIST_STEMS
        if not (Path(DEFAULT_ROOT) / f'{stem}-ubyte.gz').is_file()
    ]
    if missing:
        pytest.skip(f'Fashion-MNIST idx files {missing} not found in '
                    f'{DEFAULT_ROOT}; install them with `apt-get install '
                    'dataset-fashion-mnist`')


def make_images(folder: Path, num: int = 16, size: int = 32,
                seed: int = 0) -> Path:
    """Write ``num`` RGB PNGs of ``size`` x ``size`` into ``folder``.

    Each image is a colour gradient with a few solid rectangles on it, so a
    model sees edges and flat regions rather than white noise.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)  # (H, W) in [0, 1]
    for i in range(num):
        start, end = rng.uniform(0, 255, size=(2, 3))
        t = (x * rng.uniform() + y * (1 - rng.uniform()))[..., None]
        img = (1 - t) * start + t * end  # (H, W, 3)
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, size - 4, size=2)
            h, w = rng.integers(4, size // 2, size=2)
            img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, size=3)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(
            folder / f'img_{i:03d}.png')
    return folder


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory) -> Path:
    """16 structured 32x32 RGB PNGs in one folder, for mmpretrain's
    ``CustomDataset(data_root=..., with_label=False)``."""
    return make_images(tmp_path_factory.mktemp('images'))


@pytest.fixture(scope='session')
def class_folders(tmp_path_factory) -> Path:
    """Two classes of 8 structured 32x32 PNGs, one sub-folder each, for
    mmpretrain's ``CustomDataset(data_root=...)`` with labels."""
    root = tmp_path_factory.mktemp('classes')
    make_images(root / 'a', num=8, seed=1)
    make_images(root / 'b', num=8, seed=2)
    return root


def write_idx(path: Path, magic: int, data: np.ndarray) -> None:
    """A gzipped idx file as Fashion-MNIST's: magic, sizes, uint8 values."""
    header = magic.to_bytes(4, 'big') + b''.join(
        n.to_bytes(4, 'big') for n in data.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + data.astype(np.uint8).tobytes())


@pytest.fixture(scope='session')
def fake_fmnist(tmp_path_factory) -> Path:
    """Generated Fashion-MNIST idx files: 40 train and 20 t10k items of
    28x28, each a rectangle of random values (0..255) on black, label
    ``i % 10``; no two items are alike, so a pasted item tells its split.
    """
    root = tmp_path_factory.mktemp('fake_fmnist')
    rng = np.random.default_rng(0)
    for split, num in (('train', 40), ('t10k', 20)):
        items = np.zeros((num, 28, 28), dtype=np.uint8)
        for item in items:
            y0, x0 = rng.integers(0, 8, size=2)
            h, w = rng.integers(12, 20, size=2)
            item[y0:y0 + h, x0:x0 + w] = rng.integers(0, 256, (h, w))
        write_idx(root / f'{split}-images-idx3-ubyte.gz', 0x803, items)
        write_idx(root / f'{split}-labels-idx1-ubyte.gz', 0x801,
                  np.arange(num) % 10)
    return root


@pytest.fixture(scope='session')
def tiny_moma_run(tmp_path_factory) -> dict:
    """For ``tests/data/configs/moma_tiny_cpu.py``: 16 generated 40x40
    images, MoCo v3 / MAE teacher checkpoints in MMPretrain's layout, and
    the ``--cfg-options`` that point the config at them."""
    import mmmoma  # noqa: F401  (first: its fixes precede mmpretrain)
    from mmpretrain.models import MoCoV3ViT, VisionTransformer
    root = tmp_path_factory.mktemp('tiny_moma_run')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        base = rng.integers(0, 255, (1, 1, 3))
        ramp = np.linspace(0, 1, 40)[:, None, None] * rng.integers(0, 255, 3)
        img = np.clip(base + ramp + rng.normal(0, 8, (40, 40, 3)), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(images / f'{i:02d}.png')
    torch.manual_seed(0)
    tiny = dict(embed_dims=32, num_layers=2, num_heads=2,
                feedforward_channels=64)
    ckpts = {}
    for name, cls in (('mocov3', MoCoV3ViT), ('mae', VisionTransformer)):
        teacher = cls(arch=dict(tiny), img_size=32, patch_size=8,
                      out_type='raw')
        teacher.init_weights()
        state = {'backbone.' + k: v for k, v in teacher.state_dict().items()}
        ckpts[name] = root / f'{name}.pth'
        torch.save({'state_dict': state}, ckpts[name])
    options = [
        f'model.teachers.mocov3.init_cfg.checkpoint={ckpts["mocov3"]}',
        f'model.teachers.mae.init_cfg.checkpoint={ckpts["mae"]}',
        f'train_dataloader.dataset.data_root={images}',
    ]
    return dict(root=root, images=images, ckpts=ckpts, options=options)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for torchrun)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def run_tool():
    """Run a command from the repository's ``tools/`` in a subprocess.

    The subprocess uses this interpreter (``sys.executable``, also as
    ``PYTHON`` for the ``tools/*.sh`` launchers) and has the checkout first
    on ``PYTHONPATH``, so it tests this tree whether or not it is installed.
    With ``check``, a non-zero exit fails the test with the output.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get('PYTHONPATH')) if p)
    env['PYTHON'] = sys.executable
    env.setdefault('PYTHONWARNINGS', 'ignore')

    def run(args: list, cwd: Path, extra_env: dict = None,
            check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args],
                              cwd=cwd,
                              env={**env, **(extra_env or {})},
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f'{" ".join(map(str, args))} exited with '
                        f'{proc.returncode}:\n{proc.stdout[-6000:]}')
        return proc

    return run


@pytest.fixture(autouse=True)
def mmpretrain_default_scope():
    """Start every test in MMPretrain's scope.

    MMEngine's current ``DefaultScope`` is global: a test that builds an
    MMSegmentation model leaves ``mmseg`` current, and a later
    ``MODELS.build`` would then look in the wrong registry. Tests that need
    another scope create their own instance, which becomes current.
    """
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(
        f'mmmoma-test-{next(_SCOPE_IDS)}', scope_name='mmpretrain')
    yield
