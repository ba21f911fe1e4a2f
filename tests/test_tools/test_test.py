"""tools/test.py on a checkpoint that tools/train.py wrote, on CPU."""
import pickle
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'
CONFIG = REPO_ROOT / 'tests' / 'data' / 'configs' / 'vit_tiny_cls_cpu.py'


def test_test_evaluates_a_trained_checkpoint_and_dumps_predictions(
        tmp_path, class_folders, run_tool):
    work_dir = tmp_path / 'work'
    run_tool([
        sys.executable, TOOLS / 'train.py', CONFIG, '--work-dir', work_dir,
        '--no-validate', '--cfg-options',
        f'train_dataloader.dataset.data_root={class_folders}'
    ], cwd=tmp_path)
    # A full Runner checkpoint (message hub included), loaded with
    # weights_only=True through mmmoma.checkpoint_safety's allowlist.
    out_file = tmp_path / 'preds.pkl'
    out = run_tool([
        sys.executable, TOOLS / 'test.py', CONFIG, work_dir / 'epoch_1.pth',
        '--work-dir', work_dir, '--out', out_file, '--cfg-options',
        f'test_dataloader.dataset.data_root={class_folders}'
    ], cwd=tmp_path).stdout
    assert 'accuracy/top1' in out
    with open(out_file, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16
    assert {int(p['gt_label']) for p in preds} == {0, 1}
