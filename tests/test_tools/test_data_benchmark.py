"""tools/analysis_tools/data_benchmark.py from the command line (the
measurement itself is tested in tests/test_apis/test_bench_data.py)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_data_benchmark_cli_prints_the_table_and_writes_the_json(
        tmp_path, image_folder, run_tool):
    out = tmp_path / 'data.json'
    proc = run_tool([
        sys.executable, ROOT / 'tools/analysis_tools/data_benchmark.py',
        ROOT / 'configs/moma/moma_vit-b_moco-mae_100e.py', '--images',
        image_folder, '--num', '2', '--repeats', '1', '--out', out
    ], cwd=tmp_path)
    saved = json.loads(out.read_text())
    assert saved['images']['files'] == 16
    assert saved['images_per_s_one_thread'] > 0
    for row in ('0:LoadImageFromFile', 'one thread', f'wrote {out}'):
        assert row in proc.stdout, row
