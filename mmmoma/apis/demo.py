"""MOMA end to end on Fashion-MNIST: train MAE and MoCo v3 teachers, distil
them with MOMA, compare all four models by k-NN (``tools/demo.py``).

Each training step is a config run through ``tools/train.py``
(:func:`mmmoma.apis.steps.train_step`, which the study shares).
"""
import argparse
import copy
import os.path as osp
import time
from typing import Dict, List, Optional

from mmmoma.fileio import atomic_write
from .common import (REPO_ROOT, Progress, add_run_args, command_line,
                     config_hash, fmt_time, prepare, read_cache,
                     resolve_preset, write_cache, write_json)
from .steps import Step, step_options, train_step

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'demo')
CONFIGS = {
    'mae': 'mae_vit-tiny-p4_1xb128-coslr_fmnist.py',
    'mocov3': 'mocov3_vit-tiny-p4_1xb128-coslr_fmnist.py',
    # the paper's recipe. The recipe study's `mean-position` (its
    # *-mean-position_* twin) was the default after v1's 2-epoch budget;
    # study v2 measured it at 10 epochs, 3 seeds: no gain on k-NN, -0.72
    # linear, -2.5 MNIST-5k k-NN (docs/study-v2), so the simpler recipe
    # is the default again
    'moma': 'moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py',
}
TITLES = {
    'mae': 'MAE teacher (ViT 128-d x4)',
    'mocov3': 'MoCo v3 teacher (ViT 128-d x4)',
    'moma': 'MOMA student (ViT 96-d x4)',
    'random': 'random init (ViT 96-d x4)',
}

# Each preset: images per epoch (None: all 60k), epochs per step, batch,
# k-NN sizes, and seconds each step took on a 2-core CPU (for the ETA).
PRESETS = {
    'cpu':
    dict(
        train_samples=10000,
        # the student's epochs after the first cost ~13 s on 2 cores
        # (teacher_cache): 20 of them keep the chain under 14 minutes
        epochs=dict(mae=2, mocov3=4, moma=20),
        batch_size=128,
        num_workers=0,
        knn_train=10000,
        knn_test=10000,
        hook_train=2000,
        hook_test=1000,
        amp=False,
        estimate=dict(mae=50, mocov3=350, moma=350, eval=80)),
    'smoke':
    dict(
        train_samples=512,
        # 2 student epochs: the second reads the teacher cache
        epochs=dict(mae=1, mocov3=1, moma=2),
        batch_size=128,
        num_workers=0,
        knn_train=1000,
        knn_test=500,
        hook_train=500,
        hook_test=250,
        amp=False,
        estimate=dict(mae=12, mocov3=15, moma=12, eval=15)),
    'gpu':
    dict(
        train_samples=None,
        epochs=dict(mae=100, mocov3=100, moma=100),
        batch_size=512,
        num_workers=6,
        knn_train=60000,
        knn_test=10000,
        hook_train=10000,
        hook_test=10000,
        amp=True,
        estimate=dict(mae=1200, mocov3=2400, moma=1500, eval=60)),
}
KNN = dict(k=20, temperature=0.07, feature='cls_token')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The demo's command line."""
    parser = argparse.ArgumentParser(
        description='MOMA end to end on Fashion-MNIST: train MAE and MoCo '
        'v3 teachers, distil them with MOMA, compare all by k-NN.',
        epilog='k-NN protocol: class token, cosine similarity, k=20, '
        'T=0.07 weighted vote; bank = first N train images, queries = first '
        'M test images (cpu: 10k / 10k, smoke: 1k / 500, gpu: 60k / 10k).')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='where every output goes (default: work_dirs/demo)')
    add_run_args(
        parser, PRESETS,
        'cpu: <= 15 min on 2 cores (default); smoke: <= 3 min, for CI; '
        'gpu: all 60k images, 100 epochs per step')
    return resolve_preset(parser.parse_args(argv))


def demo_step(name: str, index: int, work: str) -> Step:
    """Step ``index`` of the demo chain, under ``work``."""
    return Step(name, osp.join(CONFIG_DIR, CONFIGS[name]), TITLES[name],
                osp.join(work, name),
                osp.join(work, 'checkpoints', f'{name}.pth'),
                f'step {index}/4 ')


def evaluate(name: str, work: str, preset: dict, checkpoints: Dict[str, str],
             progress: Progress, data_root: Optional[str] = None,
             force: bool = False) -> dict:
    """k-NN of one model (cached in the work dir, keyed by its inputs).

    Args:
        name (str): ``'random'`` (the untrained student) or a step name.
        work (str): The demo's work dir.
        preset (dict): The preset.
        checkpoints (dict[str, str]): The published checkpoint of each step.
        progress (Progress): Where the progress lines go.
        data_root (str, optional): ``--data-root``. Defaults to None.
        force (bool): Ignore the cache. Defaults to False.

    Returns:
        dict: See :func:`mmmoma.evaluation.knn_evaluate_checkpoint`.
    """
    import torch
    from mmengine.config import Config

    from mmmoma.evaluation import knn_evaluate_checkpoint

    config = 'moma' if name == 'random' else name
    ckpt = None if name == 'random' else checkpoints[name]
    protocol = dict(
        KNN, knn_train=preset['knn_train'], knn_test=preset['knn_test'])
    key = dict(
        protocol=protocol,
        checkpoint=ckpt,
        mtime=osp.getmtime(ckpt) if ckpt else None,
        config=CONFIGS[config],
        config_hash=config_hash(osp.join(CONFIG_DIR, CONFIGS[config])),
        data_root=data_root)
    cache = osp.join(work, 'eval', f'{name}.json')
    cached = read_cache(cache, key, force)
    if cached is not None:
        progress.log(f'k-NN {name}: reusing {cache}')
        return cached
    cfg = Config.fromfile(osp.join(CONFIG_DIR, CONFIGS[config]))
    options = step_options(config, preset, data_root, {
        k: v
        for k, v in checkpoints.items() if k in ('mae', 'mocov3')
    })
    cfg.merge_from_dict(options)
    loader = copy.deepcopy(cfg.custom_hooks[0]['train_dataloader'])
    if preset['num_workers']:
        loader.update(num_workers=preset['num_workers'])
    train_loader = copy.deepcopy(loader)
    train_loader['dataset']['num_samples'] = preset['knn_train']
    val_loader = copy.deepcopy(loader)
    val_loader['dataset'].update(split='test', num_samples=preset['knn_test'])
    torch.manual_seed(0)  # the random-init row is reproducible
    results = knn_evaluate_checkpoint(
        cfg,
        ckpt,
        train_dataloader=train_loader,
        val_dataloader=val_loader,
        **KNN)
    write_cache(cache, key, results)
    progress.log(f'k-NN {name}: top-1 {results["top1"]:.2f}% '
                 f'({results["seconds"]:.0f} s)')
    return results


def plot_step_curves(step: Step) -> Optional[str]:
    """``curves.png`` in the step's run dir (losses, lr, k-NN monitor), or
    None when the run dir holds no log (a reused step whose folder was
    deleted)."""
    from .curves import plot_curves
    out = osp.join(step.run_dir, 'curves.png')
    try:
        plot_curves(step.run_dir, out, title=f'{step.title}: training curves')
    except FileNotFoundError:
        return None
    return out


def render(rows: List[dict], preset_name: str, preset: dict, total: float,
           command: str, work: Optional[str] = None) -> str:
    """results.md: the table and how it was made; with ``work``, links to
    the rows' ``curves`` relative to it."""
    lines = [
        '| model | epochs | images seen | k-NN top-1 (%) | wall time |',
        '|---|---:|---:|---:|---:|',
    ]
    for row in rows:
        lines.append(f'| {row["model"]} | {row["epochs"]} | '
                     f'{row["images_seen"]:,} | {row["knn_top1"]:.2f} | '
                     f'{fmt_time(row["train_seconds"], hours=False)} |')
    samples = preset['train_samples'] or 60000
    cpu = sum(r['cpu_seconds'] or 0 for r in rows)
    lines += [
        '',
        f'Made by `{command}` (preset `{preset_name}`); this run took '
        f'{fmt_time(total, hours=False)} of wall time in all (steps reused '
        'from an earlier run count 0 here).',
        '',
        f'- Pretraining: the first {samples:,} Fashion-MNIST train images '
        'per epoch, 28x28, no labels; the teachers see augmented crops '
        '(MoCo v3 two views of each). The student sees 10% of the 49 '
        'patches (mask ratio 0.9) of the unaugmented image, and its '
        'teachers\' features of each image are computed in its first epoch '
        'and reused (teacher_cache).',
        '- Wall time: the training step, its k-NN monitoring included; the '
        f'student\'s excludes its teachers\'. CPU time of the three steps '
        f'(all cores): {fmt_time(cpu, hours=False)}.',
        f'- k-NN on frozen features: class token, cosine similarity, '
        f'k={KNN["k"]}, T={KNN["temperature"]} weighted vote; memory bank = '
        f'the first {preset["knn_train"]:,} train images, queries = the '
        f'first {preset["knn_test"]:,} test images, no augmentation.',
    ]
    links = [
        f'[{row["model"]}]({osp.relpath(row["curves"], work)})'
        for row in rows if work and row.get('curves')
    ]
    if links:
        lines.append('- Training curves (each loss, learning rate, k-NN '
                     'monitor): ' + ', '.join(links) + '.')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the demo chain; return what ``results.json`` holds.

    Args:
        argv (list[str], optional): The arguments. Defaults to None:
            ``sys.argv[1:]``.
    """
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    command = command_line('demo', argv)
    progress = Progress('demo', preset['estimate'], hours=False)
    work = prepare(args.data_root, args.work_dir)
    progress.log(f'preset {args.preset}: outputs in {work}')
    metas, checkpoints, curves = {}, {}, {}
    for index, name in enumerate(('mae', 'mocov3', 'moma'), 1):
        step = demo_step(name, index, work)
        if name == 'moma':  # the cache holds every image of an epoch
            step = step._replace(extra_options={
                'model.teacher_cache.size': preset['train_samples'] or 60000
            })
        teachers = {k: checkpoints[k] for k in ('mocov3', 'mae')
                    if k in checkpoints}
        metas[name] = train_step(step, args.preset, preset, progress,
                                 teachers, args.data_root, args.force)
        checkpoints[name] = osp.join(work, 'checkpoints', f'{name}.pth')
        curves[name] = plot_step_curves(step)

    progress.log('step 4/4 k-NN evaluation of frozen features', 'eval')
    eval_start = time.time()
    rows = []
    for name in ('random', 'mae', 'mocov3', 'moma'):
        results = evaluate(name, work, preset, checkpoints, progress,
                           args.data_root, args.force)
        meta = metas.get(name, {})
        rows.append(
            dict(
                name=name,
                model=TITLES[name],
                epochs=meta.get('epochs', 0),
                images_seen=meta.get('images_seen', 0),
                knn_top1=results['top1'],
                knn_top5=results.get('top5'),
                train_seconds=meta.get('train_seconds'),
                cpu_seconds=meta.get('cpu_seconds'),
                eval_seconds=results['seconds'],
                monitor_knn=meta.get('monitor_knn', []),
                checkpoint=checkpoints.get(name),
                curves=curves.get(name)))
    progress.finish('eval')
    total = time.time() - progress.start
    table = render(rows, args.preset, preset, total, command, work)
    with atomic_write(osp.join(work, 'results.md'), 'w') as f:
        f.write('# MOMA on Fashion-MNIST, end to end\n\n' + table + '\n')
    results = dict(
        command=command,
        preset=args.preset,
        settings={k: v for k, v in preset.items() if k != 'estimate'},
        knn=dict(KNN, knn_train=preset['knn_train'],
                 knn_test=preset['knn_test']),
        rows=rows,
        eval_seconds=time.time() - eval_start,
        total_seconds=total,
        work_dir=work)
    write_json(osp.join(work, 'results.json'), results)
    print()
    print(table)
    print()
    print(f'Outputs: {work}/ (one folder per step with logs and MMEngine '
          'checkpoints and curves.png; checkpoints/*.pth weights; '
          'results.json, results.md)')
    return results
