"""Measure the training step of a config: throughput, FLOPs, MFU, memory.

The step runs on synthetic images of the model's input size: timings do not
depend on the pixel values or on the teachers' weights, so ``Pretrained``
init_cfgs are dropped unless ``keep_weights``. One step is counted with
:func:`mmmoma.apis.benchmark.flops.count_flops` (forward + backward, and
the forward split between teachers, student, necks and heads); then
``iters`` steps are timed after ``warmup``. Optionally the config's own train dataloader is
timed too, alone and feeding the step, and the slowest ops are profiled
(:mod:`mmmoma.apis.benchmark.timing`).

:func:`main` is the command line of ``tools/benchmark.py``: it prints a
table (:func:`render`) and writes JSON.
"""
import argparse
import platform
from typing import Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmmoma.apis import launch
from mmmoma.apis.benchmark.flops import count_flops
from mmmoma.apis.benchmark.timing import (format_rows, peak_memory,
                                          profile_steps, report,
                                          time_dataloader, time_steps,
                                          time_steps_with_data, time_teachers)
from mmmoma.models.checkpoint import is_pretrained_cfg

DESCRIPTION = ('Measure the training step of a config: throughput, FLOPs, '
               'MFU, memory.')
IMAGENET1K_TRAIN = 1281167
AMP_DTYPES = {'none': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}
# --fast: MomaAlgorithm's speed options (see its docstring) and a fused
# AdamW; configs/moma/benchmarks/moma_vit-b_moco-mae_fast-100e.py sets the
# same for training.
FAST_CFG_OPTIONS = {
    'model.teacher_dtype': 'bfloat16',
    'model.teacher_inference_mode': True,
    'optim_wrapper.optimizer.fused': True,
    'env_cfg.cudnn_benchmark': True,
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line of ``tools/benchmark.py``."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument('config', help='config file')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='images per step (default: the config\'s)')
    parser.add_argument('--iters', type=int, default=20,
                        help='timed steps (default 20)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed steps first (default 5)')
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES), default='none',
                        help='autocast dtype (needs a GPU for fp16)')
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='dense peak of the device for --amp, for MFU '
                        '(H100/H200 SXM bf16: 989)')
    parser.add_argument('--data', type=int, default=0, metavar='N',
                        help='also time N batches of the train dataloader')
    parser.add_argument('--data-in-loop', action='store_true',
                        help='with --data N, also time N training steps '
                        'fed by the train dataloader')
    parser.add_argument('--keep-weights', action='store_true',
                        help='load Pretrained init_cfgs (default: random)')
    parser.add_argument('--fast', action='store_true',
                        help='apply FAST_CFG_OPTIONS (bf16 teachers in '
                        'inference mode, fused AdamW, cuDNN benchmark; '
                        'with --amp bf16 no loss scaling)')
    parser.add_argument('--compile', action='store_true',
                        help='also set model.compile=True (torch.compile '
                        'block by block)')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='also profile N steps and report the ops that '
                        'take the most time')
    parser.add_argument('--epoch-images', type=int,
                        default=IMAGENET1K_TRAIN,
                        help='images per epoch, for the cost of the '
                        'config\'s whole run (default %(default)s: '
                        'ImageNet-1k train)')
    parser.add_argument('--out', default=None, help='write the JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'iters', 'peak_tflops', 'epoch_images'):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f'--{name.replace("_", "-")}={value} must be > 0')
    for name in ('warmup', 'data', 'profile'):
        value = getattr(args, name)
        if value < 0:
            parser.error(f'--{name}={value}: allowed: an integer >= 0')
    if args.data_in_loop and not args.data:
        parser.error('--data-in-loop needs --data N (N > 0): the number of '
                     'steps to time')
    return args


def _drop_pretrained(model_cfg: dict) -> None:
    for cfg in [model_cfg.get('backbone', {})] + list(
            (model_cfg.get('teachers') or {}).values()):
        if is_pretrained_cfg(cfg.get('init_cfg')):
            cfg.pop('init_cfg')


def build(cfg: Config, args: argparse.Namespace, device: torch.device):
    """The model (train mode) and its optimiser wrapper on ``device``.

    Args:
        cfg (Config): The config, options merged.
        args (argparse.Namespace): :func:`parse_args`'s; ``keep_weights``,
            ``amp`` and ``fast`` are read.
        device (torch.device): Where the model goes.

    Returns:
        tuple: ``(model, optim_wrapper)``.
    """
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model
    if not args.keep_weights:
        _drop_pretrained(model_cfg)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(model_cfg)
        model.init_weights()
        model.to(device)
        model.train()
        wrapper = dict(cfg.optim_wrapper)
        dtype = AMP_DTYPES[args.amp]
        if dtype is None:
            wrapper['type'] = 'OptimWrapper'
            wrapper.pop('loss_scale', None)
            wrapper.pop('dtype', None)
        else:
            # The config's loss_scale stays: 'dynamic' in the naive recipe.
            wrapper.update(type='AmpOptimWrapper', dtype=dtype)
            if args.fast and dtype is torch.bfloat16:
                # bf16 has float32's range: no scaling, and no GradScaler
                # whose inf check waits for the GPU every step.
                wrapper['loss_scale'] = dict(enabled=False)
        optim_wrapper = build_optim_wrapper(model, wrapper)
    return model, optim_wrapper


def record_schedule_position() -> None:
    """Record what the Runner's train loop records: MMPretrain's momentum
    encoders (MoCo v3, BYOL) read their schedule position from it."""
    hub = MessageHub.get_current_instance()
    for key, value in (('iter', 0), ('max_iters', 1000), ('epoch', 0),
                       ('max_epochs', 1)):
        hub.update_info(key, value)


def count_views(cfg: Config) -> int:
    """Views per image of the train pipeline: 0 without ``MultiView`` (the
    batch is one (B, 3, H, W) tensor), else how many it makes (a list)."""
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    for transform in dataset.get('pipeline', []):
        if str(transform.get('type', '')).split('.')[-1] == 'MultiView':
            views = transform['num_views']
            return sum(views) if isinstance(views, (list, tuple)) else views
    return 0


def synthetic_batch(model, batch_size: int, device, views: int = 0) -> dict:
    """Random uint8 images with sample indices 0..B-1, like a dataset's:
    masks are keyed by them, and a ``teacher_cache`` hits from step 2.
    ``views`` as :func:`count_views` gives (0: one tensor)."""
    from mmpretrain.structures import DataSample
    size = model.backbone.patch_embed.init_input_size

    def images():
        return torch.randint(0, 256, (batch_size, 3, *size),
                             dtype=torch.uint8).to(device)

    samples = [
        DataSample(metainfo=dict(sample_idx=i)) for i in range(batch_size)
    ]
    inputs = [images() for _ in range(views)] if views else images()
    return dict(inputs=inputs, data_samples=samples)


def run_cost(cfg: Config, gflop_per_image: float, images_per_s: float,
             epoch_images: int) -> Optional[dict]:
    """Compute and device time of the config's whole schedule, at the
    counted FLOPs and the measured throughput of this step."""
    train_cfg = cfg.get('train_cfg') or {}
    epochs = train_cfg.get('max_epochs')
    if not isinstance(epochs, int):
        return None  # an iteration-based schedule
    images = epochs * epoch_images
    return {
        'epochs': epochs,
        'epoch_images': epoch_images,
        'exaflop': gflop_per_image * images / 1e9,
        'device_hours': images / images_per_s / 3600,
    }


def speed_options(model, optim_wrapper) -> dict:
    """The speed settings in effect, as measured.

    MOMA's teacher settings are read from its ``FrozenTeachers`` and
    ``TeacherCache``; a model without teachers (MMPretrain's MAE, MoCo v3)
    reports None for them.
    """
    teachers = getattr(model, 'teachers', None)
    dtype = getattr(teachers, 'dtype', None)
    cache = getattr(model, 'teacher_cache', None)
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    return {
        'teacher_dtype': None if dtype is None else str(dtype),
        'teacher_inference_mode': getattr(teachers, 'inference_mode', None),
        'compile': getattr(model, 'compile_cfg', None),
        # with a cache, timed steps (after the first) run no teacher
        'teacher_cache': None if cache is None else cache.size,
        'fused_optimizer': bool(
            optim_wrapper.optimizer.defaults.get('fused')),
        'loss_scaler': None if scaler is None else scaler.is_enabled(),
        'cudnn_benchmark': torch.backends.cudnn.benchmark,
    }


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--fast``, ``--compile`` and ``--cfg-options``
    merged, in that order."""
    cfg = launch.load_config(args.config)
    if args.fast:
        cfg.merge_from_dict(FAST_CFG_OPTIONS)
    if args.compile:
        cfg.merge_from_dict({'model.compile': True})
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def measure(cfg: Config, args: argparse.Namespace) -> dict:
    """Count and time the training step of ``cfg`` as ``args`` ask.

    Args:
        cfg (Config): From :func:`load_config`.
        args (argparse.Namespace): From :func:`parse_args`.

    Returns:
        dict: What the JSON of ``--out`` holds (keys as :func:`render`
        reads them).
    """
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    if args.amp != 'none' and device.type != 'cuda':
        raise SystemExit(f'--amp {args.amp} needs a GPU (MMEngine\'s '
                         'AmpOptimWrapper refuses CPU); use --amp none.')
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    # What MMEngine's Runner does with env_cfg.
    torch.backends.cudnn.benchmark = bool(
        cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    model, optim_wrapper = build(cfg, args, device)
    record_schedule_position()
    data = synthetic_batch(model, batch_size, device, count_views(cfg))
    if getattr(model, 'teacher_cache', None) is not None:
        # Fill the teacher cache: every count and timing below is of the
        # cached step, which runs no teacher.
        model.train_step(data, optim_wrapper)

    flops = count_flops(model, optim_wrapper, data)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    step, last_loss = time_steps(model, optim_wrapper, data, args.warmup,
                                 args.iters, device)
    teachers = time_teachers(model, data, args.warmup, args.iters, device,
                             AMP_DTYPES[args.amp])
    result = {
        'config': args.config,
        'device': (torch.cuda.get_device_name(device)
                   if device.type == 'cuda' else platform.processor()
                   or platform.machine()) + f' ({device.type})',
        'torch': torch.__version__,
        'amp': args.amp,
        'fast': args.fast,
        'speed_options': speed_options(model, optim_wrapper),
        'batch_size': batch_size,
        'last_loss': last_loss,
        'step_ms': step * 1e3,
        'images_per_s': batch_size / step,
        'gflop_per_image': {
            k: v / batch_size / 1e9
            for k, v in flops.items()
        },
        'teacher_forward_ms': None if teachers is None else teachers * 1e3,
        'num_teachers': len(getattr(model, 'teachers', ())),
        **peak_memory(device),
    }
    result['run'] = run_cost(cfg, result['gflop_per_image']['total'],
                             result['images_per_s'], args.epoch_images)
    achieved = flops['total'] / step / 1e12
    result['achieved_tflops'] = achieved
    if args.peak_tflops:
        result['peak_tflops'] = args.peak_tflops
        result['mfu'] = achieved / args.peak_tflops
    if args.profile:
        result['profile'] = profile_steps(model, optim_wrapper, data,
                                          args.profile, device)
    if args.data:
        loader = time_dataloader(cfg, batch_size, args.data)
        result['dataloader_workers'] = cfg.train_dataloader.get(
            'num_workers', 0)
        result['dataloader_images_per_s'] = loader['images_per_s']
        result['dataloader_batches'] = loader['timed_batches']
    if args.data_in_loop:
        result['data_in_loop_images_per_s'] = time_steps_with_data(
            model, optim_wrapper, cfg, batch_size, args.data,
            device)['images_per_s']
    return result


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the command line ``argv``: print the table, write the JSON.

    Returns:
        dict: What the JSON holds (:func:`measure`).
    """
    args = parse_args(argv)
    result = measure(load_config(args), args)
    report(render(result), result, args.out)
    return result


def render(result: dict) -> str:
    """The printed table of a :func:`measure` result."""
    rows = [('config', result['config']), ('device', result['device']),
            ('torch / amp', f'{result["torch"]} / {result["amp"]}'),
            ('fast', f'{result["fast"]} {result["speed_options"]}'),
            ('batch', result['batch_size']),
            ('step', f'{result["step_ms"]:.1f} ms'),
            ('throughput', f'{result["images_per_s"]:.1f} images/s'),
            ('last loss', f'{result["last_loss"]:.4f}'),
            ('achieved', f'{result["achieved_tflops"]:.3f} TFLOP/s')]
    if 'mfu' in result:
        rows.append(('MFU', f'{100 * result["mfu"]:.1f}% of '
                     f'{result["peak_tflops"]} TFLOP/s'))
    for part, value in result['gflop_per_image'].items():
        rows.append((f'GFLOP/image {part}', f'{value:.3f}'))
    run = result.get('run')
    if run:
        rows.append(('whole run', f'{run["epochs"]} epochs x '
                     f'{run["epoch_images"]} images: {run["exaflop"]:.2f} '
                     f'EFLOP, {run["device_hours"]:.1f} device-hours at '
                     'this throughput'))
    if result['teacher_forward_ms'] is not None:
        share = result['teacher_forward_ms'] / result['step_ms']
        rows.append(('teachers (forward)',
                     f'{result["teacher_forward_ms"]:.1f} ms '
                     f'({100 * share:.0f}% of the step)'))
    for key in ('gpu_peak_allocated_gib', 'cpu_peak_rss_gib'):
        if key in result:
            rows.append((key.replace('_', ' '), f'{result[key]:.2f}'))
    if 'dataloader_images_per_s' in result:
        rows.append((f'dataloader ({result["dataloader_workers"]} workers)',
                     f'{result["dataloader_images_per_s"]:.1f} images/s'))
    if 'data_in_loop_images_per_s' in result:
        rows.append(('step with data in the loop',
                     f'{result["data_in_loop_images_per_s"]:.1f} images/s'))
    for row in result.get('profile', [])[:10]:
        rows.append((f'profile {row["op"][:40]}',
                     f'{row["self_ms_per_step"]:.2f} ms/step, '
                     f'{row["calls_per_step"]:.0f} calls'))
    return format_rows(rows)
