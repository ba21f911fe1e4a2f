"""tools/benchmark.py on CPU with the tiny MOMA config."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'mmmoma_benchmark_tool', ROOT / 'tools/benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_counts_flops_and_splits_them(tmp_path):
    tool = _load_tool()
    out = tmp_path / 'bench.json'
    result = tool.main([
        str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--batch-size',
        '4', '--iters', '2', '--warmup', '1', '--peak-tflops', '1',
        '--out', str(out)
    ])
    saved = json.loads(out.read_text())
    assert saved['images_per_s'] == result['images_per_s']
    assert saved['images_per_s'] > 0 and saved['step_ms'] > 0
    gflop = saved['gflop_per_image']
    # forward + backward > forward > 0; the parts add up to the forward
    assert gflop['total'] > gflop['forward'] > 0
    parts = sum(v for k, v in gflop.items() if k.startswith('forward_'))
    assert parts == pytest.approx(gflop['forward'], rel=0.02)
    for part in ('teachers', 'backbone', 'necks'):
        assert gflop[f'forward_{part}'] > 0
    assert 0 < saved['mfu'] < 1
    assert saved['teacher_forward_ms'] > 0


def test_benchmark_refuses_amp_on_cpu():
    tool = _load_tool()
    with pytest.raises(SystemExit, match='--amp bf16 needs a GPU'):
        tool.main([
            str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--amp', 'bf16',
            '--device', 'cpu'
        ])
