"""The GPU plan of .dev_scripts/gpu_benchmark.py, checked on the CPU."""
import importlib
import json
import sys
from pathlib import Path

import pytest

from mmmoma.apis.benchmark import data as data_benchmark
from mmmoma.apis.benchmark import step as benchmark

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def script():
    """The development script, imported from .dev_scripts/ (no package)."""
    folder = str(ROOT / '.dev_scripts')
    sys.path.insert(0, folder)
    try:
        return importlib.import_module('gpu_benchmark')
    finally:
        sys.path.remove(folder)


def test_gpu_benchmark_script_runs_its_tiny_plan(script, tmp_path, capsys):
    summary = script.main(
        ['--tiny', '--in-process', '--out-dir', str(tmp_path)])
    saved = json.loads((tmp_path / 'gpu_benchmark.json').read_text())
    assert saved['table'] == summary['table']
    assert [r['status'] for r in saved['runs']] == ['ok', 'ok']
    naive, fast = (r['result'] for r in saved['runs'])
    assert not naive['fast'] and fast['fast'] and fast['profile']
    assert naive['speed_options']['teacher_dtype'] is None
    for name, check in saved['equivalence']['teachers'].items():
        assert 0 < check['target_rel_err'] < 2e-2, name
        assert check['loss_rel_diff'] < 2e-2, name
    assert 'tiny fast' in capsys.readouterr().out
    assert (tmp_path / 'gpu_benchmark.log').stat().st_size > 0
    # The GPU plan: the main config first, naive before fast.
    plan = script.gpu_plan()
    assert [p['name'] for p in plan[:2]] == ['vit-b 2t naive', 'vit-b 2t fast']
    for item in plan:
        assert Path(script.config_path(item['config'])).is_file(), item
    assert not any(item['tool'] == 'data' for item in plan)


def test_gpu_benchmark_measures_data_with_images(script, tmp_path,
                                                 image_folder):
    summary = script.main([
        '--tiny', '--in-process', '--skip-equivalence', '--out-dir',
        str(tmp_path), '--images',
        str(image_folder), '--data-workers', '0'
    ])
    rows = {r['name']: r for r in summary['runs']}
    assert all(r['status'] == 'ok' for r in rows.values()), rows
    pipeline = rows['data pipeline']['result']
    assert pipeline['images_per_s_one_thread'] > 0
    assert [r['workers'] for r in pipeline['loader']] == [0]
    fed = rows['tiny fast + data']['result']
    assert fed['data_in_loop_images_per_s'] > 0 and fed['fast']
    assert 'pipeline images/s: 1 thread' in summary['table']
    assert 'with data' in summary['table']


def test_gpu_plan_feeds_the_step_from_an_imagenet_layout(script, tmp_path,
                                                         image_folder):
    args = script.parse_args(
        ['--out-dir', str(tmp_path), '--images', str(image_folder)])
    plan = {item['name']: item for item in script.gpu_plan(args.images)}
    argv = script.benchmark_argv(plan['vit-b 2t fast + data'], args, 'o.json')
    assert argv[:2] == [script.BENCHMARK, script.config_path(script.VIT_B)]
    options = argv[argv.index('--cfg-options') + 1:]
    root = Path(options[0].split('=', 1)[1])
    assert options[1] == 'train_dataloader.num_workers=14'
    lines = (root / 'meta' / 'train.txt').read_text().splitlines()
    # 14 workers: 28 prefetched + 28 timed batches, more than --data 5
    assert len(lines) == 256 * (28 + 28)
    assert all((root / 'train' / line.split()[0]).is_file()
               for line in lines[:16])
    argv = script.benchmark_argv(plan['data pipeline'], args, 'o.json')
    assert argv[0] == script.DATA_BENCHMARK
    assert argv[argv.index('--workers') + 1:][:3] == ['1', '8', '14']
    # MAE's own recipe, for the cost of its 1600 epochs on the same GPU.
    assert plan['mae vit-b (mmpretrain)']['config'].startswith('mmpretrain::')


def test_gpu_benchmark_plan_falls_back_and_keeps_to_budget(script, tmp_path):

    def runner(argv, timeout):
        # A stand-in for tools/benchmark.py whose compiled teachers fail
        # under inference mode.
        if ('--compile' in argv
                and 'model.teacher_inference_mode=False' not in argv):
            raise RuntimeError('exit 1\ncompile failed')
        with open(argv[argv.index('--out') + 1], 'w') as f:
            json.dump({'images_per_s': 1.0}, f)
        return ''

    plan = script.gpu_plan()
    for budget, compiled in ((1000, 'ok'), (100, 'skipped')):
        args = script.parse_args(
            ['--out-dir', str(tmp_path), '--budget-s', str(budget)])
        with open(tmp_path / 'log', 'w') as log:
            rows = script.run_plan(plan, args, runner, log)
        status = {(r['name'], r['batch']): r['status'] for r in rows}
        assert status[('vit-b 2t naive', 256)] == 'ok'
        assert status[('vit-t 2t fast', 256)] == 'ok'
        if compiled == 'ok':
            assert status[('vit-b 2t fast+compile', 256)].startswith(
                'failed: compile failed')
            assert status[('vit-b 2t fast+compile-noinf', 256)] == 'ok'
            # the last fallback runs only if the one before failed
            assert ('vit-b 2t fast+compile-student', 256) not in status
        else:  # 150 s estimated, 100 s of budget
            assert status[('vit-b 2t fast+compile', 256)].startswith(
                'skipped')
            assert ('vit-b 2t fast+compile-noinf', 256) not in status


def test_every_gpu_plan_item_parses_and_its_config_loads(script, tmp_path,
                                                         image_folder):
    """The GPU run has one shot: each command line must be valid."""
    from mmengine import Config
    # What --in-process runs for each tool script: its package module.
    tools = {
        script.BENCHMARK: benchmark,
        script.DATA_BENCHMARK: data_benchmark
    }
    assert {p: m.__name__ for p, m in tools.items()} == script.TOOL_MODULES
    args = script.parse_args(
        ['--out-dir', str(tmp_path), '--images', str(image_folder)])
    args.amp, args.peak_tflops = 'bf16', 989.0  # as on the GPU
    for item in script.gpu_plan(args.images):
        argv = script.benchmark_argv(item, args, str(tmp_path / 'o.json'))
        parsed = tools[argv[0]].parse_args(argv[1:])
        cfg = Config.fromfile(parsed.config)
        if parsed.cfg_options:
            cfg.merge_from_dict(parsed.cfg_options)
        assert cfg.model.type in ('MomaAlgorithm', 'MAE'), item['name']
