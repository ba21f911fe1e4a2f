"""mmmoma.apis.benchmark.step on CPU with the tiny MOMA config and
MMPretrain's."""
import importlib.util
import json
from pathlib import Path

import pytest

from mmmoma.apis.benchmark import step as benchmark

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_counts_flops_and_splits_them(tmp_path):
    out = tmp_path / 'bench.json'
    result = benchmark.main([
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
    # The whole run: the tiny config's 2 epochs of ImageNet-1k's images.
    run = saved['run']
    assert run['epochs'] == 2 and run['epoch_images'] == 1281167
    assert run['exaflop'] == pytest.approx(gflop['total'] * 2 * 1281167 /
                                           1e9)
    assert run['device_hours'] == pytest.approx(
        2 * 1281167 / saved['images_per_s'] / 3600)


MMPRETRAIN_CONFIGS = Path(importlib.util.find_spec(
    'mmpretrain').origin).parent / '.mim' / 'configs'


def _one_cpu_step(config: str, batch_size: int) -> dict:
    """Benchmark one CPU step, no warmup, of an MMPretrain config (a path
    under its configs folder)."""
    return benchmark.main([
        str(MMPRETRAIN_CONFIGS / config), '--batch-size',
        str(batch_size), '--iters', '1', '--warmup', '0', '--device', 'cpu'
    ])


def test_mmpretrain_mae_step_is_counted_like_on_the_gpu():
    result = _one_cpu_step(
        'mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py', 1)
    gflop = result['gflop_per_image']
    # 58.8 GFLOP per image was counted on an H200 with the same counter
    # (the starting figures); on the CPU attention runs other ops.
    assert gflop['total'] == pytest.approx(58.8, abs=0.05)
    assert set(gflop) == {'total', 'forward', 'forward_backbone',
                          'forward_neck'}
    assert result['run']['epochs'] == 1600


def test_multi_view_configs_get_a_list_of_views():
    result = _one_cpu_step(
        'mocov3/mocov3_vit-small-p16_16xb256-amp-coslr-300e_in1k.py', 2)
    gflop = result['gflop_per_image']
    # Two views through the student and through the momentum encoder.
    assert gflop['forward_momentum_encoder'] == pytest.approx(
        gflop['forward_backbone'] + gflop.get('forward_neck', 0.0), rel=0.05)
    assert result['teacher_forward_ms'] is None


def test_benchmark_refuses_amp_on_cpu():
    with pytest.raises(SystemExit, match='--amp bf16 needs a GPU'):
        benchmark.main([
            str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--amp', 'bf16',
            '--device', 'cpu'
        ])


def test_benchmark_fast_applies_the_speed_options(tmp_path):
    out = tmp_path / 'fast.json'
    benchmark.main([
        str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--batch-size',
        '4', '--iters', '1', '--warmup', '1', '--fast', '--profile', '1',
        '--out', str(out), '--cfg-options', 'model.compile.backend=eager'
    ])
    saved = json.loads(out.read_text())
    assert saved['fast'] is True
    assert saved['speed_options'] == {
        'teacher_dtype': 'torch.bfloat16',
        'teacher_inference_mode': True,
        'compile': {
            'parts': ['teachers', 'backbone', 'necks', 'heads'],
            'backend': 'eager',
            'dynamic': False
        },
        'teacher_cache': None,
        'fused_optimizer': True,
        'loss_scaler': None,  # plain OptimWrapper on the CPU
        'cudnn_benchmark': True,
    }
    assert saved['last_loss'] > 0
    # FLOPs are counted eagerly, compiled or not.
    assert saved['gflop_per_image']['forward_teachers'] > 0
    assert saved['profile'] and saved['profile'][0]['self_ms_per_step'] > 0


def test_fast_config_sets_what_benchmark_fast_measures():
    from mmengine import Config
    cfg = Config.fromfile(
        str(ROOT / 'configs/moma/benchmarks/moma_vit-b_moco-mae_fast-100e.py'))
    for key, value in benchmark.FAST_CFG_OPTIONS.items():
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert node == value, key
    # --amp bf16 --fast: bf16 autocast without loss scaling.
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.loss_scale == dict(enabled=False)
    assert cfg.model.compile is True  # what --compile adds


def test_benchmark_measures_the_cached_step(tmp_path):
    """With teacher_cache, the counted and timed steps run no teacher."""
    out = tmp_path / 'cached.json'
    benchmark.main([
        str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--batch-size',
        '4', '--iters', '1', '--warmup', '1', '--out',
        str(out), '--cfg-options', 'model.teacher_cache.size=4'
    ])
    saved = json.loads(out.read_text())
    assert saved['speed_options']['teacher_cache'] == 4
    flops = saved['gflop_per_image']
    assert 'forward_teachers' not in flops
    assert 0 < flops['forward'] < flops['total']
    assert saved['last_loss'] > 0


def test_benchmark_times_the_dataloader_and_the_step_with_data(
        tmp_path, image_folder):
    result = benchmark.main([
        str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'), '--batch-size',
        '4', '--iters', '1', '--warmup', '0', '--data', '2',
        '--data-in-loop', '--cfg-options',
        f'train_dataloader.dataset.data_root={image_folder}'
    ])
    assert result['dataloader_workers'] == 0
    assert result['dataloader_images_per_s'] > 0
    assert result['data_in_loop_images_per_s'] > 0
    with pytest.raises(SystemExit):  # argparse: --data-in-loop needs --data
        benchmark.main([
            str(ROOT / 'tests/data/configs/moma_tiny_cpu.py'),
            '--data-in-loop'
        ])
