"""Naive vs fast MOMA training steps on one GPU, in one short run.

First checks on the ViT-B config that the fast options give the naive
losses (bf16 rounding apart) and that flash attention runs; then times
training steps with ``python tools/benchmark.py`` (random teachers,
synthetic images, bf16 autocast), one process per measurement so that an
out-of-memory or a compiler failure stays in it: the 2-teacher ViT-B config
naive, ``--fast`` and ``--fast --compile`` at batch 256 and 512, then the
single-teacher and ViT-S / ViT-T configs naive and ``--fast`` at 256, and
MMPretrain's MAE ViT-B step (for the cost of its 1600 epochs on the same
GPU). With ``--images DIR`` (JPEGs; ``fetch_gpu_wheels.sh`` puts ImageNet
samples in ``.whl/images``) also the MOMA ImageNet pipeline with 1 to 14
dataloader workers (``tools/analysis_tools/data_benchmark.py``) and the fast
step with that dataloader in the loop. Measurements that would not finish
within ``--budget-s`` are skipped. Prints a table last and writes
``gpu_benchmark.json`` (every result) and ``gpu_benchmark.log`` (every
command's output) into ``--out-dir`` (default: ``$OUT``). The wheels come
first, on a machine with network::

    bash .dev_scripts/fetch_gpu_wheels.sh .whl

Then on a CUDA box without network, with ``.whl`` carried there::

    pip_args="--no-index --no-deps --no-compile --target /tmp/site"
    python3 -m pip install -q $pip_args .whl/*.whl
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
    python3 .dev_scripts/gpu_benchmark.py --images .whl/images --out-dir out

At most ``--budget-s`` (420) seconds plus start-up on an H100. ``--tiny``
runs a short plan on the CPU with the tiny test config, to check this
script; ``--in-process`` calls the package functions behind the tools
(``mmmoma.apis.benchmark.step.main``...) in this process instead.
"""
import argparse
import contextlib
import copy
import importlib
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCHMARK = osp.join(ROOT, 'tools', 'benchmark.py')
DATA_BENCHMARK = osp.join(ROOT, 'tools', 'analysis_tools',
                          'data_benchmark.py')
# What --in-process calls instead of each tool script: its package module.
TOOL_MODULES = {
    BENCHMARK: 'mmmoma.apis.benchmark.step',
    DATA_BENCHMARK: 'mmmoma.apis.benchmark.data',
}
TINY = osp.join(ROOT, 'tests', 'data', 'configs', 'moma_tiny_cpu.py')
VIT_B = 'configs/moma/moma_vit-b_moco-mae_100e.py'
# MMPretrain's MAE recipe, found the way ``mmpretrain::`` bases are.
MAE_1600E = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py'
# mmmoma from this checkout, installed or not (imported only where needed:
# this process stays light, the measurements run in subprocesses).
sys.path.insert(0, ROOT)
# Dense bf16 peak of the SXM parts, for MFU.
PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0}


def gpu_plan(images: Optional[str] = None) -> List[dict]:
    """Measurements in priority order; ``est_s`` is a generous guess.

    ``tool`` is ``'benchmark'`` (``tools/benchmark.py``) or ``'data'``
    (``data_benchmark.py`` on ``images``); ``data_root`` asks for the step
    with the dataloader in the loop, on an ImageNet layout of ``images``.
    """
    def item(name, config, batch, flags=(), iters=20, warmup=5, est_s=40,
             profile=0, if_failed=None, tool='benchmark', data_root=None):
        return dict(name=name, config=config, batch=batch, flags=list(flags),
                    iters=iters, warmup=warmup, est_s=est_s, profile=profile,
                    if_failed=if_failed, tool=tool, data_root=data_root)

    plan = [
        item('vit-b 2t naive', VIT_B, 256, profile=3),
        item('vit-b 2t fast', VIT_B, 256, ['--fast'], profile=3),
        item('vit-b 2t fast+compile', VIT_B, 256, ['--fast', '--compile'],
             est_s=150),
        # Only if the one above failed: compiled teachers without inference
        # mode, then the student side alone.
        item('vit-b 2t fast+compile-noinf', VIT_B, 256, [
            '--fast', '--compile', '--cfg-options',
            'model.teacher_inference_mode=False'
        ], est_s=150, if_failed='vit-b 2t fast+compile'),
        item('vit-b 2t fast+compile-student', VIT_B, 256, [
            '--fast', '--cfg-options',
            'model.compile.parts=[backbone,necks,heads]'
        ], est_s=150, if_failed='vit-b 2t fast+compile-noinf'),
        item('mae vit-b (mmpretrain)', MAE_1600E, 256, est_s=40),
    ]
    if images:
        plan += [
            item('data pipeline', VIT_B, 256, iters=4, est_s=60,
                 tool='data'),
            item('vit-b 2t fast + data', VIT_B, 256, ['--fast'], iters=5,
                 warmup=2, est_s=90, data_root='imagenet'),
        ]
    plan += [
        item('vit-b 2t naive', VIT_B, 512, est_s=50),
        item('vit-b 2t fast', VIT_B, 512, ['--fast'], est_s=50),
    ]
    for name, config in (
            ('moco-to-mae', 'configs/moma/moma_vit-b_moco-to-mae_100e.py'),
            ('mae-to-moco', 'configs/moma/moma_vit-b_mae-to-moco_100e.py'),
            ('vit-s 2t', 'configs/moma/moma_vit-s_moco-mae_100e.py'),
            ('vit-t 2t', 'configs/moma/moma_vit-t_moco-mae_100e.py')):
        for mode, flags in (('naive', []), ('fast', ['--fast'])):
            plan.append(item(f'{name} {mode}', config, 256, flags, iters=10,
                             warmup=3, est_s=30))
    plan.append(item('vit-b 2t fast+compile', VIT_B, 512,
                     ['--fast', '--compile'], est_s=150))
    return plan


def tiny_plan(images: Optional[str] = None) -> List[dict]:
    common = dict(config=TINY, batch=4, iters=2, warmup=1, est_s=5,
                  if_failed=None, tool='benchmark', data_root=None)
    plan = [
        dict(common, name='tiny naive', flags=[], profile=0),
        dict(common, name='tiny fast', flags=['--fast'], profile=1),
    ]
    if images:  # the tiny config reads a flat folder (CustomDataset)
        plan += [
            dict(common, name='data pipeline', flags=[], profile=0,
                 tool='data'),
            dict(common, name='tiny fast + data', flags=['--fast'],
                 profile=0, data_root='folder'),
        ]
    return plan


def config_path(config: str) -> str:
    """A repository config, or an ``mmpretrain::`` one, as a file path."""
    if config.startswith('mmpretrain::'):
        from mmengine.utils import get_installed_path
        return osp.join(
            get_installed_path('mmpretrain'), '.mim', 'configs',
            config[len('mmpretrain::'):])
    return osp.join(ROOT, config)


def imagenet_layout(images: str, dest: str, entries: int) -> str:
    """An ImageNet-1k-style ``data_root`` (``train/`` and
    ``meta/train.txt``) of ``entries`` samples cycling over the images."""
    files = sorted(f for f in os.listdir(images)
                   if f.lower().endswith(('.jpg', '.jpeg', '.png')))
    if not files:
        raise SystemExit(f'--images={images!r} holds no .jpg/.png file.')
    os.makedirs(osp.join(dest, 'train'), exist_ok=True)
    os.makedirs(osp.join(dest, 'meta'), exist_ok=True)
    for name in files:
        shutil.copy(osp.join(images, name), osp.join(dest, 'train', name))
    with open(osp.join(dest, 'meta', 'train.txt'), 'w') as f:
        for i in range(entries):
            f.write(f'{files[i % len(files)]} 0\n')
    return dest


def benchmark_argv(item: dict, args: argparse.Namespace,
                   out: str) -> List[str]:
    """The command line (script first) that measures ``item``."""
    config = config_path(item['config'])
    if item['tool'] == 'data':
        return [
            DATA_BENCHMARK, config, '--images', args.images, '--workers',
            *[str(w) for w in args.data_workers], '--batch-size',
            str(item['batch']), '--batches',
            str(item['iters']), '--out', out
        ]
    argv = [
        BENCHMARK, config, '--batch-size',
        str(item['batch']), '--iters',
        str(item['iters']), '--warmup',
        str(item['warmup']), '--amp', args.amp, '--out', out
    ] + item['flags']
    if args.peak_tflops:
        argv += ['--peak-tflops', str(args.peak_tflops)]
    if args.device:
        argv += ['--device', args.device]
    if item['profile']:
        argv += ['--profile', str(item['profile'])]
    if item['data_root']:
        from mmmoma.apis.benchmark.timing import loader_batches

        # One epoch holds the warm and timed batches of each loader that
        # benchmark.py builds (the loader alone, then feeding the step).
        batches = sum(loader_batches(args.data_workers[-1], item['iters']))
        if item['data_root'] == 'folder':
            root = args.images
        else:
            root = imagenet_layout(args.images,
                                   osp.join(args.work_dir, 'in1k'),
                                   item['batch'] * batches)
        argv += [
            '--data',
            str(item['iters']), '--data-in-loop', '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
            f'train_dataloader.num_workers={args.data_workers[-1]}'
        ]
    return argv


def run_in_subprocess(argv: List[str], timeout: float) -> str:
    """Run ``argv`` (a tool script, then its arguments) in a new process."""
    proc = subprocess.run([sys.executable] + argv,
                          cwd=ROOT,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f'exit {proc.returncode}\n{proc.stdout}')
    return proc.stdout


def run_in_process(argv: List[str], timeout: float) -> str:
    """Run the ``main`` of a tool's package module in this process (tests;
    no timeout)."""
    tool = importlib.import_module(TOOL_MODULES[argv[0]])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tool.main(argv[1:])
    return buf.getvalue()


def check_equivalence(config: str, device_name: Optional[str],
                      amp: str) -> dict:
    """Naive vs fast losses and targets on the same weights and masks."""
    import mmmoma  # noqa: F401
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmmoma.models.checkpoint import is_pretrained_cfg
    from mmmoma.models.utils import random_token_mask
    device = torch.device(device_name or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    cfg = Config.fromfile(osp.join(ROOT, config))
    models = []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for fast in (False, True):
            model_cfg = copy.deepcopy(cfg.model)
            for part in [model_cfg.backbone] + list(
                    model_cfg.teachers.values()):
                if is_pretrained_cfg(part.get('init_cfg')):
                    part.pop('init_cfg')
            if fast:
                model_cfg.update(teacher_dtype='bfloat16',
                                 teacher_inference_mode=True)
            model = MODELS.build(model_cfg)
            model.init_weights()
            models.append(model.to(device).train())
    naive, fast = models
    # Teachers are not in the state dict (save_teachers=False).
    fast.load_state_dict(naive.state_dict())
    fast.teachers.load_state_dict(naive.teachers.state_dict())
    size = naive.backbone.patch_embed.init_input_size
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, *size, generator=gen).to(device)
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
    autocast = torch.autocast(device.type, dtype=dtype,
                              enabled=dtype is not None)
    result = {'config': config, 'device': str(device), 'teachers': {}}
    with autocast, torch.no_grad():
        ids_keep, ids_restore, _ = random_token_mask(
            images.shape[0], naive.num_patches, naive.mask_ratio, device)
        losses = []
        for model in (naive, fast):
            torch.manual_seed(0)  # the same masks
            losses.append({
                k: float(v)
                for k, v in model.loss(images, None).items()
            })
        for name in naive.teachers:
            ref = naive.teacher_targets(name, images, ids_keep,
                                        ids_restore)[0][name]
            got = fast.teacher_targets(name, images, ids_keep,
                                       ids_restore)[0][name]
            ref_loss = losses[0][f'loss_{name}']
            got_loss = losses[1][f'loss_{name}']
            result['teachers'][name] = {
                'target_rel_err':
                float((got - ref).norm() / ref.norm()),
                'loss_naive': ref_loss,
                'loss_fast': got_loss,
                'loss_rel_diff': abs(got_loss - ref_loss) / abs(ref_loss),
            }
    if device.type == 'cuda':
        from torch.nn.attention import SDPBackend, sdpa_kernel
        q = torch.randn(2, 12, 197, 64, device=device, dtype=torch.bfloat16)
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            result['flash_attention'] = True
        except RuntimeError as err:
            result['flash_attention'] = f'not available: {err}'
    print(json.dumps(result, indent=2))
    return result


def run_plan(plan: List[dict], args: argparse.Namespace,
             runner: Callable[[List[str], float], str], log) -> List[dict]:
    start = time.perf_counter()
    rows = []
    status: Dict[str, str] = {}
    for i, item in enumerate(plan):
        if item.get('if_failed') and status.get(item['if_failed'],
                                                'ok') == 'ok':
            continue
        left = args.budget_s - (time.perf_counter() - start)
        row = dict(name=item['name'], config=item['config'],
                   batch=item['batch'], flags=item['flags'])
        rows.append(row)
        if left < item['est_s']:
            row['status'] = f'skipped: {left:.0f} s of the budget left'
            continue
        out = osp.join(args.work_dir, f'run{i:02d}.json')
        argv = benchmark_argv(item, args, out)
        log.write(f'\n$ {" ".join(argv)}\n')
        log.flush()
        t0 = time.perf_counter()
        try:
            log.write(runner(argv, left))
            with open(out) as f:
                row['result'] = json.load(f)
            row['status'] = 'ok'
        except subprocess.TimeoutExpired:
            row['status'] = 'timed out'
        except Exception as err:  # noqa: BLE001 - reported, next item runs
            row['status'] = 'failed: ' + str(err).strip().splitlines()[-1]
            log.write(f'{err}\n')
        row['wall_s'] = time.perf_counter() - t0
        status[item['name']] = row['status']
        log.write(f'[{item["name"]} b{item["batch"]}: {row["status"]}, '
                  f'{row["wall_s"]:.0f} s]\n')
        log.flush()
        print(f'{item["name"]} b{item["batch"]}: {row["status"]} '
              f'({row["wall_s"]:.0f} s)', flush=True)
    return rows


def table(rows: List[dict]) -> str:
    naive: Dict[tuple, float] = {}
    for row in rows:
        if (row['status'] == 'ok' and '--fast' not in row['flags']
                and 'images_per_s' in row['result']):
            naive.setdefault((row['config'], row['batch']),
                             row['result']['images_per_s'])
    lines = [
        f'{"run":<24}{"batch":>6}{"img/s":>9}{"x naive":>9}{"MFU":>7}'
        f'{"step ms":>9}{"teach ms":>9}{"t img/s":>9}{"GiB":>7}{"loss":>9}'
        '  status'
    ]
    for row in rows:
        res = row.get('result')
        if res is None:
            lines.append(f'{row["name"]:<24}{row["batch"]:>6}'
                         f'{"":>68}  {row["status"]}')
            continue
        if 'images_per_s_one_thread' in res:  # data_benchmark.py
            loaders = ', '.join(f'{r["workers"]} workers '
                                f'{r["images_per_s"]:.0f}'
                                for r in res['loader'])
            lines.append(f'{row["name"]:<24}{row["batch"]:>6}  pipeline '
                         f'images/s: 1 thread '
                         f'{res["images_per_s_one_thread"]:.0f}, {loaders}')
            continue
        base = naive.get((row['config'], row['batch']))
        speedup = f'{res["images_per_s"] / base:.2f}' if base else '-'
        mfu = f'{100 * res["mfu"]:.1f}%' if 'mfu' in res else '-'
        mem = res.get('gpu_peak_allocated_gib', res.get('cpu_peak_rss_gib'))
        teach = res.get('teacher_forward_ms') or 0.0
        # Images/s of one teacher's forward alone (the teachers run in turn).
        per_teacher = (res['batch_size'] * res.get('num_teachers', 1) / teach
                       * 1e3 if teach else 0.0)
        status = 'ok'
        if 'data_in_loop_images_per_s' in res:
            status += (f', with data {res["data_in_loop_images_per_s"]:.0f}'
                       ' img/s')
        lines.append(
            f'{row["name"]:<24}{row["batch"]:>6}'
            f'{res["images_per_s"]:>9.0f}{speedup:>9}{mfu:>7}'
            f'{res["step_ms"]:>9.1f}{teach:>9.1f}{per_teacher:>9.0f}'
            f'{mem:>7.1f}'
            f'{res["last_loss"]:>9.4f}  {status}')
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=os.environ.get('OUT', '.'),
                        help='where the JSON and the log go (default: $OUT)')
    parser.add_argument('--budget-s', type=float, default=420,
                        help='skip measurements that would end later '
                        '(default 420 s)')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='for MFU (default: 989 on an H100 / H200)')
    parser.add_argument('--images', default=None,
                        help='a folder of JPEGs: also measure the ImageNet '
                        'pipeline and the step with data in the loop')
    parser.add_argument('--data-workers', type=int, nargs='+',
                        default=[1, 8, 14],
                        help='dataloader workers to measure; the last feeds '
                        'the step (default: 1 8 14, for a 16-core box)')
    parser.add_argument('--tiny', action='store_true',
                        help='a short CPU plan with the tiny test config')
    parser.add_argument('--in-process', action='store_true',
                        help='run the benchmarks in this process (tests)')
    parser.add_argument('--skip-equivalence', action='store_true')
    parser.add_argument('--equivalence-json', default=None,
                        help=argparse.SUPPRESS)  # the subprocess' entry
    args = parser.parse_args(argv)
    args.amp = 'none' if args.tiny else 'bf16'
    args.device = 'cpu' if args.tiny else None
    # One JSON per run, outside --out-dir: gpu_benchmark.json holds them.
    args.work_dir = tempfile.mkdtemp(prefix='gpu_benchmark_')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = 'tests/data/configs/moma_tiny_cpu.py' if args.tiny else VIT_B
    if args.equivalence_json:
        result = check_equivalence(config, args.device, args.amp)
        with open(args.equivalence_json, 'w') as f:
            json.dump(result, f)
        return result
    os.makedirs(args.out_dir, exist_ok=True)
    if args.peak_tflops is None and not args.tiny:
        import torch
        name = (torch.cuda.get_device_name()
                if torch.cuda.is_available() else '')
        args.peak_tflops = next(
            (v for k, v in PEAK_TFLOPS.items() if k in name), None)
    summary = {'argv': argv if argv is not None else sys.argv[1:]}
    log_path = osp.join(args.out_dir, 'gpu_benchmark.log')
    with open(log_path, 'w') as log:
        if not args.skip_equivalence:
            t0 = time.perf_counter()
            try:
                if args.in_process:
                    summary['equivalence'] = check_equivalence(
                        config, args.device, args.amp)
                else:
                    path = osp.join(args.work_dir, 'equivalence.json')
                    cmd = [sys.executable, __file__, '--equivalence-json',
                           path] + (['--tiny'] if args.tiny else [])
                    proc = subprocess.run(cmd, cwd=ROOT, text=True,
                                          stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT,
                                          timeout=150)
                    log.write(proc.stdout)
                    if proc.returncode:
                        tail = proc.stdout.strip().splitlines()[-3:]
                        raise RuntimeError(f'exit {proc.returncode}: ' +
                                           ' | '.join(tail))
                    with open(path) as f:
                        summary['equivalence'] = json.load(f)
            except Exception as err:  # noqa: BLE001 - timings still run
                summary['equivalence'] = f'failed: {err}'
                log.write(f'equivalence: {err}\n')
            print('equivalence:', json.dumps(summary['equivalence']),
                  f'({time.perf_counter() - t0:.0f} s)', flush=True)
            args.budget_s -= time.perf_counter() - t0
        runner = run_in_process if args.in_process else run_in_subprocess
        plan = tiny_plan(args.images) if args.tiny else gpu_plan(
            args.images)
        summary['runs'] = run_plan(plan, args, runner, log)
    summary['table'] = table(summary['runs'])
    with open(osp.join(args.out_dir, 'gpu_benchmark.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(summary['table'])
    return summary


if __name__ == '__main__':
    main()
