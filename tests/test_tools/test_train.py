"""tools/train.py and tools/dist_train.sh on the tiny MAE config, on CPU."""
import json
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
DIST_TRAIN = REPO_ROOT / 'tools' / 'dist_train.sh'
CONFIG = REPO_ROOT / 'tests' / 'data' / 'configs' / 'mae_tiny_cpu.py'
ITERS_PER_EPOCH = 4  # 16 images, batch 4, one process


def load_meta(ckpt: Path) -> dict:
    # Our own Runner checkpoint: it pickles MMEngine objects.
    return torch.load(ckpt, map_location='cpu', weights_only=False)['meta']


def logged_iters(work_dir: Path, run_dir: str) -> list:
    """The iterations that one run (its timestamped log dir) trained."""
    lines = (work_dir / run_dir / 'vis_data' / 'scalars.json').read_text()
    return [json.loads(line)['iter'] for line in lines.splitlines()]


def run_dirs(work_dir: Path) -> set:
    return {p.name for p in work_dir.iterdir() if (p / 'vis_data').is_dir()}


def data_opts(image_folder: Path, max_epochs: int) -> list:
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={image_folder}',
        f'train_cfg.max_epochs={max_epochs}'
    ]


def test_train_writes_checkpoint_and_resume_continues(tmp_path, image_folder,
                                                      run_tool):
    work_dir = tmp_path / 'work'
    train = [sys.executable, TRAIN, CONFIG, '--work-dir', work_dir]
    run_tool(train + data_opts(image_folder, 1), cwd=tmp_path)
    first = work_dir / 'epoch_1.pth'
    meta = load_meta(first)
    assert (meta['epoch'], meta['iter']) == (1, ITERS_PER_EPOCH)
    state = torch.load(first, map_location='cpu', weights_only=False)
    assert any(k.startswith('backbone.') for k in state['state_dict'])
    first_mtime = first.stat().st_mtime_ns
    (before, ) = run_dirs(work_dir)

    # --resume without a path: the latest checkpoint in the work dir.
    out = run_tool(train + ['--resume'] + data_opts(image_folder, 2),
                   cwd=tmp_path).stdout
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in out
    (resumed, ) = run_dirs(work_dir) - {before}
    assert logged_iters(work_dir, resumed) == list(
        range(ITERS_PER_EPOCH + 1, 2 * ITERS_PER_EPOCH + 1))
    meta = load_meta(work_dir / 'epoch_2.pth')
    assert (meta['epoch'], meta['iter']) == (2, 2 * ITERS_PER_EPOCH)
    assert first.stat().st_mtime_ns == first_mtime  # epoch 1 not redone

    # --resume PATH into a fresh work dir.
    other = tmp_path / 'other'
    run_tool([sys.executable, TRAIN, CONFIG, '--work-dir', other,
              '--resume', first] + data_opts(image_folder, 2), cwd=tmp_path)
    (run, ) = run_dirs(other)
    assert logged_iters(other, run)[0] == ITERS_PER_EPOCH + 1
    assert not (other / 'epoch_1.pth').exists()
    assert load_meta(other / 'epoch_2.pth')['iter'] == 2 * ITERS_PER_EPOCH


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='tests the CPU (gloo) launch path')
def test_dist_train_two_cpu_processes(tmp_path, image_folder, run_tool,
                                      free_port):
    work_dir = tmp_path / 'work'
    out = run_tool(
        ['bash', DIST_TRAIN, CONFIG, 2, '--work-dir', work_dir] +
        data_opts(image_folder, 2),
        cwd=tmp_path,
        extra_env={'PORT': str(free_port)}).stdout
    assert "dist_cfg: {'backend': 'gloo'}" in out
    # Two ranks share the 16 images: half the iterations of one process.
    meta = load_meta(work_dir / 'epoch_2.pth')
    assert (meta['epoch'], meta['iter']) == (2, ITERS_PER_EPOCH)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_amp_on_cpu_fails_with_a_clear_message(tmp_path, run_tool):
    proc = run_tool([sys.executable, TRAIN, CONFIG, '--amp'],
                    cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert '--amp' in proc.stdout and 'needs a GPU' in proc.stdout
    assert not (tmp_path / 'work_dirs').exists()
