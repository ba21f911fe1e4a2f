"""tools/benchmark.py from the command line (the measurement itself is
tested in tests/test_apis/test_bench_step.py)."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_cli_prints_the_table_and_writes_the_json(tmp_path,
                                                            run_tool):
    out = tmp_path / 'bench.json'
    proc = run_tool([
        sys.executable, ROOT / 'tools/benchmark.py',
        ROOT / 'tests/data/configs/moma_tiny_cpu.py', '--batch-size', '2',
        '--iters', '1', '--warmup', '0', '--out', out
    ], cwd=tmp_path)
    saved = json.loads(out.read_text())
    assert saved['batch_size'] == 2 and saved['images_per_s'] > 0
    assert saved['gflop_per_image']['forward_teachers'] > 0
    for row in ('throughput', 'GFLOP/image total', 'teachers (forward)',
                'whole run', f'wrote {out}'):
        assert row in proc.stdout, row
