"""MOMA end to end on Fashion-MNIST with one command, on a laptop CPU.

Offline, with no pretrained weights and no ImageNet, the chain trains its
own teachers and then distils them, each step a normal config run through
``tools/train.py``::

    1. MAE teacher      MMPretrain's MAE         configs/demo/mae_*.py
    2. MoCo v3 teacher  MMPretrain's MoCoV3      configs/demo/mocov3_*.py
    3. MOMA student     MomaAlgorithm, mask 0.9  configs/demo/moma_*.py
       (teachers loaded from steps 1-2 with
       init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.'))
    4. k-NN on frozen features of the three models and of the randomly
       initialised student, then one table.

Usage::

    python tools/demo.py                       # CPU default, <= 15 min
    python tools/demo.py --smoke               # CI, <= 3 min
    python tools/demo.py --preset gpu          # longer, on one GPU
    python tools/demo.py --force               # retrain everything

Outputs under ``--work-dir`` (default ``work_dirs/demo``): one folder per
step with MMEngine's logs and checkpoints,
``checkpoints/{mae,mocov3,moma}.pth`` (weights only, the files the next
steps load), ``results.json`` and ``results.md``. A rerun reuses every
step whose checkpoint exists and was made with the same settings and
config.

k-NN protocol (step 4): class token of the last block, L2-normalised;
memory bank = the first ``knn_train`` Fashion-MNIST train images, queries =
the first ``knn_test`` test images (the whole 10k test split by default);
DINO's weighted vote with k=20 and temperature 0.07. Images are unaugmented
28x28. See ``mmmoma/evaluation/knn.py``.
"""
import argparse
import copy
import hashlib
import json
import os
import os.path as osp
import re
import resource
import shutil
import subprocess
import sys
import time
import warnings
import threading
from typing import Dict, List, NamedTuple, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'demo')
CONFIGS = {
    'mae': 'mae_vit-tiny-p4_1xb128-coslr_fmnist.py',
    'mocov3': 'mocov3_vit-tiny-p4_1xb128-coslr_fmnist.py',
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


def parse_args(argv=None) -> argparse.Namespace:
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
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default='cpu',
        help='cpu: <= 15 min on 2 cores (default); smoke: <= 3 min, for CI; '
        'gpu: all 60k images, 100 epochs per step')
    parser.add_argument(
        '--smoke', action='store_true', help='same as --preset smoke')
    parser.add_argument(
        '--force',
        action='store_true',
        help='retrain and re-evaluate even where results exist')
    parser.add_argument(
        '--data-root',
        default=None,
        help='folder with the Fashion-MNIST idx files (default: '
        '/usr/share/datasets/fashion-mnist, from `apt-get install '
        'dataset-fashion-mnist`)')
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset = 'smoke'
    return args


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    seconds = int(round(seconds))
    return f'{seconds // 60}m{seconds % 60:02d}s'


class Progress:
    """Prints one line per event with the elapsed time and the chain ETA."""

    def __init__(self, estimate: Dict[str, float]) -> None:
        self.start = time.time()
        self.estimate = dict(estimate)
        self.done = set()

    def remaining(self, current: Optional[str],
                  current_left: Optional[float]) -> float:
        left = sum(v for k, v in self.estimate.items()
                   if k not in self.done and k != current)
        if current is not None:
            left += current_left if current_left is not None \
                else self.estimate.get(current, 0)
        return left

    def log(self,
            message: str,
            current: Optional[str] = None,
            current_left: Optional[float] = None) -> None:
        elapsed = time.time() - self.start
        eta = self.remaining(current, current_left)
        print(f'[demo {fmt_time(elapsed)} | ETA {fmt_time(eta)}] {message}',
              flush=True)


_CONFIG_LOCK = threading.Lock()  # Config.fromfile is not thread-safe


class Step(NamedTuple):
    """One training run: which algorithm, which config, where it goes.

    ``tools/study.py`` builds its own steps (other configs, run folders and
    options) and trains them with :func:`train_step`.
    """
    name: str  # 'mae', 'mocov3' or 'moma': selects the step's options
    config: str  # config file path
    title: str  # for progress lines
    run_dir: str  # MMEngine's work dir
    out: str  # the published weights-only checkpoint
    label: str = ''  # progress prefix, e.g. 'step 1/4 '
    extra_options: Optional[dict] = None  # --cfg-options applied last


def demo_step(name: str, index: int, work: str) -> Step:
    """Step ``index`` of the demo chain, under ``work``."""
    return Step(name, osp.join(CONFIG_DIR, CONFIGS[name]), TITLES[name],
                osp.join(work, name),
                osp.join(work, 'checkpoints', f'{name}.pth'),
                f'step {index}/4 ')


def config_hash(path: str) -> str:
    """Hash of a resolved config file (its bases included)."""
    from mmengine.config import Config
    with _CONFIG_LOCK:
        text = Config.fromfile(path).pretty_text
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_meta(path: str) -> Optional[dict]:
    """The ``meta`` of a published checkpoint, or None if unreadable."""
    import torch
    if not osp.isfile(path):
        return None
    try:
        return torch.load(path, map_location='cpu', weights_only=True)['meta']
    except Exception:  # noqa: BLE001 - a broken file is retrained
        return None


def publish(run_dir: str, out: str, meta: dict) -> None:
    """Save the weights of a run's last checkpoint, and ``meta``, to ``out``.

    MMEngine's checkpoints also pickle the message hub and optimizer, which
    ``weights_only=True`` (used for teacher weights) refuses; the published
    file holds tensors and plain values only.
    """
    import torch
    from mmmoma.compat import trusted_checkpoint_load
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    with trusted_checkpoint_load():  # written by this chain's Runner
        ckpt = torch.load(last, map_location='cpu', weights_only=False)
    state = {k: v for k, v in ckpt['state_dict'].items()}
    meta = dict(meta, source=osp.relpath(last, osp.dirname(out)))
    os.makedirs(osp.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    torch.save({'state_dict': state, 'meta': meta}, tmp)
    os.replace(tmp, out)


_PROGRESS = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\].*?'
                       r'eta: ([0-9:]+(?: day[s]?, [0-9:]+)?)')
_KNN = re.compile(r'k-NN .*?epoch (\d+) iter \d+: top1: ([0-9.]+)')


def _eta_seconds(text: str) -> float:
    days = 0
    if 'day' in text:
        d, text = text.split(',', 1)
        days = int(d.split()[0])
    parts = [int(p) for p in text.strip().split(':')]
    while len(parts) < 3:
        parts.insert(0, 0)
    return days * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def step_options(name: str, preset: dict, data_root: Optional[str],
                 checkpoints: Dict[str, str]) -> Dict[str, object]:
    """The ``--cfg-options`` of one training step, as a dict."""
    epochs = preset['epochs'][name]
    samples = preset['train_samples']
    iters = -(-(samples or 60000) // preset['batch_size'])
    opts = {
        'train_dataloader.batch_size': preset['batch_size'],
        'train_dataloader.num_workers': preset['num_workers'],
        'train_dataloader.persistent_workers': preset['num_workers'] > 0,
        'train_dataloader.dataset.num_samples': samples,
        'train_cfg.max_epochs': epochs,
        # cosine from the end of the 1-epoch warm-up to the last epoch
        'param_scheduler.1.T_max': max(epochs - 1, 1),
        'param_scheduler.1.end': max(epochs, 2),
        'default_hooks.logger.interval': max(1, min(10, iters // 4)),
        # monitor about twice per step
        'custom_hooks.0.interval': max(1, epochs // 2),
        'custom_hooks.0.train_dataloader.dataset.num_samples':
        preset['hook_train'],
        'custom_hooks.0.val_dataloader.dataset.num_samples':
        preset['hook_test'],
    }
    if data_root:
        for key in ('train_dataloader.dataset',
                    'custom_hooks.0.train_dataloader.dataset',
                    'custom_hooks.0.val_dataloader.dataset'):
            opts[f'{key}.data_root'] = data_root
    if name == 'moma':
        for teacher, path in checkpoints.items():
            key = f'model.teachers.{teacher}.init_cfg'
            opts[f'{key}._delete_'] = True  # replaces init_cfg=None
            opts[f'{key}.type'] = 'Pretrained'
            opts[f'{key}.checkpoint'] = path
            opts[f'{key}.prefix'] = 'backbone.'
    return opts


def train_step(step: Step, args: argparse.Namespace, preset: dict,
               progress: Progress, checkpoints: Dict[str, str]) -> dict:
    """Run (or reuse) one training step; return its table row data."""
    name, run_dir, out = step.name, step.run_dir, step.out
    settings = dict(
        preset=args.preset,
        config=osp.basename(step.config),
        config_hash=config_hash(step.config),  # an edited config retrains
        epochs=preset['epochs'][name],
        train_samples=preset['train_samples'],
        batch_size=preset['batch_size'],
        data_root=args.data_root,
        # a retrained teacher makes the student stale
        teachers={k: osp.getmtime(v)
                  for k, v in checkpoints.items()} if name == 'moma' else None)
    if step.extra_options:
        settings['extra_options'] = step.extra_options
    settings = json.loads(json.dumps(settings))
    meta = None if args.force else read_meta(out)
    if meta is not None and meta.get('settings') == settings:
        progress.done.add(name)
        progress.log(f'{step.label}{step.title}: reusing {out} '
                     '(--force retrains)')
        return meta
    if meta is not None:
        progress.log(f'{step.label}{step.title}: settings changed, '
                     'retraining')
    if osp.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    cmd = [
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'),
        step.config, '--work-dir', run_dir
    ]
    if preset['amp']:
        cmd += ['--amp']
    if preset['batch_size'] != 128:
        cmd += ['--auto-scale-lr']
    options = step_options(name, preset, args.data_root, checkpoints)
    options.update(step.extra_options or {})
    cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    env.setdefault('PYTHONWARNINGS', 'ignore')
    env['PYTHONUNBUFFERED'] = '1'  # progress lines as they come
    progress.log(f'{step.label}{step.title}: training '
                 f'{settings["epochs"]} epoch(s), log in '
                 f'{osp.join(run_dir, "train.log")}', name)
    start = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_start = usage.ru_utime + usage.ru_stime
    knn_log = []
    log_path = osp.join(run_dir, 'train.log')
    with open(log_path, 'w') as log:
        log.write(' '.join(cmd) + '\n')
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env)
        last_print = 0.0
        for line in proc.stdout:
            log.write(line)
            match = _PROGRESS.search(line)
            if match and time.time() - last_print > 5:
                last_print = time.time()
                epoch, it, total, eta = match.groups()
                progress.log(
                    f'{step.label}{name}: epoch {epoch}/'
                    f'{settings["epochs"]} iter {it}/{total}, step ETA '
                    f'{fmt_time(_eta_seconds(eta))}', name, _eta_seconds(eta))
            match = _KNN.search(line)
            if match:
                knn_log.append(
                    dict(epoch=int(match.group(1)),
                         top1=float(match.group(2))))
                progress.log(f'{step.label}{name}: k-NN (monitor, '
                             f'{preset["hook_train"]} bank / '
                             f'{preset["hook_test"]} queries) after epoch '
                             f'{match.group(1)}: top-1 {match.group(2)}%',
                             name, None)
        code = proc.wait()
    seconds = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_start
    if code != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        raise SystemExit(f'{step.label}{step.title} failed with exit code '
                         f'{code}'
                         f'; the last lines of {log_path}:\n{tail}')
    samples = preset['train_samples'] or 60000
    meta = dict(
        settings=settings,
        epochs=settings['epochs'],
        images_seen=settings['epochs'] * samples,
        train_seconds=seconds,
        # all cores together: shows how busy the machine was next to the
        # wall time (about 2x wall time on an idle 2-core machine)
        cpu_seconds=cpu_seconds,
        monitor_knn=knn_log)
    publish(run_dir, out, meta)
    progress.done.add(name)
    progress.log(f'{step.label}{step.title}: done in '
                 f'{fmt_time(seconds)} -> {out}')
    return read_meta(out)


def evaluate(name: str, args: argparse.Namespace, preset: dict,
             checkpoints: Dict[str, str], progress: Progress) -> dict:
    """k-NN of one model (cached in the work dir, keyed by its inputs)."""
    import torch
    from mmengine.config import Config
    from mmmoma.evaluation import knn_evaluate_checkpoint

    work = osp.abspath(args.work_dir)
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
        data_root=args.data_root)
    cache = osp.join(work, 'eval', f'{name}.json')
    if not args.force and osp.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get('key') == key:
            progress.log(f'k-NN {name}: reusing {cache}')
            return cached['results']
    cfg = Config.fromfile(osp.join(CONFIG_DIR, CONFIGS[config]))
    options = step_options(config, preset, args.data_root, {
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
    os.makedirs(osp.dirname(cache), exist_ok=True)
    with open(cache, 'w') as f:
        json.dump(dict(key=key, results=results), f, indent=1)
    progress.log(f'k-NN {name}: top-1 {results["top1"]:.2f}% '
                 f'({results["seconds"]:.0f} s)')
    return results


def render(rows: List[dict], preset_name: str, preset: dict, total: float,
           command: str) -> str:
    """results.md: the table and how it was made."""
    lines = [
        '| model | epochs | images seen | k-NN top-1 (%) | wall time |',
        '|---|---:|---:|---:|---:|',
    ]
    for row in rows:
        lines.append(f'| {row["model"]} | {row["epochs"]} | '
                     f'{row["images_seen"]:,} | {row["knn_top1"]:.2f} | '
                     f'{fmt_time(row["train_seconds"])} |')
    samples = preset['train_samples'] or 60000
    cpu = sum(r['cpu_seconds'] or 0 for r in rows)
    lines += [
        '',
        f'Made by `{command}` (preset `{preset_name}`); this run took '
        f'{fmt_time(total)} of wall time in all (steps reused from an '
        'earlier run count 0 here).',
        '',
        f'- Pretraining: the first {samples:,} Fashion-MNIST train images '
        'per epoch, 28x28, no labels; the teachers see augmented crops '
        '(MoCo v3 two views of each). The student sees 10% of the 49 '
        'patches (mask ratio 0.9) of the unaugmented image, and its '
        'teachers\' features of each image are computed in its first epoch '
        'and reused (teacher_cache).',
        '- Wall time: the training step, its k-NN monitoring included; the '
        f'student\'s excludes its teachers\'. CPU time of the three steps '
        f'(all cores): {fmt_time(cpu)}.',
        f'- k-NN on frozen features: class token, cosine similarity, '
        f'k={KNN["k"]}, T={KNN["temperature"]} weighted vote; memory bank = '
        f'the first {preset["knn_train"]:,} train images, queries = the '
        f'first {preset["knn_test"]:,} test images, no augmentation.',
    ]
    return '\n'.join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    command = 'python tools/demo.py' + ''.join(
        f' {a}' for a in (argv if argv is not None else sys.argv[1:]))
    progress = Progress(preset['estimate'])
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    import mmmoma  # noqa: F401  (compat fixes before mmpretrain)
    from mmengine.logging import MMLogger

    from mmmoma.datasets import FashionMNISTIdx
    # Fail now, with the install hint, rather than inside step 1.
    FashionMNISTIdx(
        **({'data_root': args.data_root} if args.data_root else {}),
        split='test',
        num_samples=1)
    MMLogger.get_instance('mmengine', log_level='WARNING')

    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    progress.log(f'preset {args.preset}: outputs in {work}')
    metas, checkpoints = {}, {}
    for index, name in enumerate(('mae', 'mocov3', 'moma'), 1):
        step = demo_step(name, index, work)
        if name == 'moma':  # the cache holds every image of an epoch
            step = step._replace(extra_options={
                'model.teacher_cache.size': preset['train_samples'] or 60000
            })
        metas[name] = train_step(step, args, preset,
                                 progress,
                                 {k: checkpoints[k] for k in ('mocov3', 'mae')
                                  if k in checkpoints})
        checkpoints[name] = osp.join(work, 'checkpoints', f'{name}.pth')

    progress.log('step 4/4 k-NN evaluation of frozen features', 'eval')
    eval_start = time.time()
    rows = []
    for name in ('random', 'mae', 'mocov3', 'moma'):
        results = evaluate(name, args, preset, checkpoints, progress)
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
                checkpoint=checkpoints.get(name)))
    progress.done.add('eval')
    total = time.time() - progress.start
    table = render(rows, args.preset, preset, total, command)
    with open(osp.join(work, 'results.md'), 'w') as f:
        f.write('# MOMA on Fashion-MNIST, end to end\n\n' + table + '\n')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(
            dict(
                command=command,
                preset=args.preset,
                settings={k: v
                          for k, v in preset.items() if k != 'estimate'},
                knn=dict(KNN, knn_train=preset['knn_train'],
                         knn_test=preset['knn_test']),
                rows=rows,
                eval_seconds=time.time() - eval_start,
                total_seconds=total,
                work_dir=work),
            f,
            indent=1)
    print()
    print(table)
    print()
    print(f'Outputs: {work}/ (one folder per step with logs and MMEngine '
          'checkpoints; checkpoints/*.pth weights; results.json, '
          'results.md)')


if __name__ == '__main__':
    main()
