"""The MOMA evidence study on Fashion-MNIST: every row, one resumable command.

Tests the four claims of MOMA (arXiv 2302.02089) at a small scale, with the
protocol of ``docs/study_protocol.md`` (written before any real run)::

    teachers   MAE and MoCo v3, MMPretrain's own algorithms (the demo's
               configs/demo/{mae,mocov3}_*.py)
    main       MoCo v3 -> student initialised from the MAE teacher
    (seeds)    MAE -> student initialised from the MoCo v3 teacher
               MoCo v3 + MAE -> random student (MOMA's default)
               MoCo v3 -> random student,  MAE -> random student
    ablations  mask ratio 0.5 / 0.75 / 0.95 (0.9 is the main row), teacher
               input masked, neck 'linear' / 'mlp' (main: 'decoder'),
               loss 'mse' (main: smooth L1)
    reference  the random student, untrained

Every student has the teachers' architecture (128-d, 4 blocks, 4x4 patches:
``configs/study/moma_vit-tiny-p4_*.py``), so that a teacher checkpoint can
initialise it, and the same budget (epochs, images per epoch, batch). Each
training run goes through ``tools/train.py`` with the training step of
``tools/demo.py`` (imported, not copied); a run's exact config is written
next to its outputs (``runs/<run>/config.py``). Evaluation of every run:
k-NN and a linear probe on frozen class-token features of the test split
(in this process), and UperNet segmentation on composed Fashion-MNIST scenes
(``tools/train.py``, validated after its last iteration) for the two
teachers and the best student.

Usage::

    python tools/study.py --smoke                 # CI, < 5 min on 2 cores
    python tools/study.py --preset cpu            # background, 2 cores
    python tools/study.py --preset gpu --publish  # one GPU, ~10 min
    python tools/study.py --preset gpu --publish docs/study --jobs 4

A rerun reuses every run, evaluation and segmentation result whose inputs
are unchanged (settings, config and the checkpoints it depends on), so an
interrupted study continues where it stopped. Outputs in ``--work-dir``
(default ``work_dirs/study-<preset>``): ``results.md`` (table, claims,
protocol), ``results.json``, ``knn_vs_epochs.png``,
``acc_vs_mask_ratio.png``, ``study_log.txt`` (what was printed); with
``--publish DIR`` they are copied there too.
"""
import argparse
import hashlib
import importlib.util
import json
import math
import os
import os.path as osp
import pprint
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_PATH = osp.join(REPO_ROOT, 'tools', 'demo.py')
SCENES_PATH = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                       'make_fmnist_scenes.py')
TEACHER_CONFIGS = {
    'mae': osp.join(REPO_ROOT, 'configs', 'demo',
                    'mae_vit-tiny-p4_1xb128-coslr_fmnist.py'),
    'mocov3': osp.join(REPO_ROOT, 'configs', 'demo',
                       'mocov3_vit-tiny-p4_1xb128-coslr_fmnist.py'),
}
STUDENT_CONFIG = osp.join(REPO_ROOT, 'configs', 'study',
                          'moma_vit-tiny-p4_moco-mae_1xb128-coslr_fmnist.py')
SEG_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'study',
    'upernet_vit-tiny-p4_moma-pre_1xb8-2k_fmnist-scenes-64x64.py')
# The evaluated network of every row: the study's ViT, its class token after
# the final LayerNorm (MAE's encoder output, MoCo v3's projector input).
EVAL_ARCH = dict(
    embed_dims=128, num_layers=4, num_heads=4, feedforward_channels=512)
KNN = dict(k=20, temperature=0.07)
PROBE = dict(weight_decay=1e-4)  # and max_iter: the preset's probe_iters
TEACHER_NAMES = {'mae': 'MAE', 'mocov3': 'MoCo v3'}

# Per preset: images per epoch (None: all 60k), epochs, batch, seeds of the
# main rows and of the ablations, evaluation sizes (bank = first N train
# images, queries = first M test images), the k-NN monitor during training,
# segmentation sizes, parallel runs, and seconds per item for the ETA
# (smoke: measured on 2 cores; cpu: scaled from the demo's 2-core timings;
# gpu: a guess, no GPU was at hand; see the protocol).
PRESETS = {
    'smoke':
    dict(
        train_samples=256,
        teacher_epochs=dict(mae=2, mocov3=2),
        student_epochs=1,
        batch_size=128,
        num_workers=0,
        amp=False,
        seeds=[0],  # one seed: the spread logic is tested without training
        ablation_seeds=[0],
        eval_train=500,
        eval_test=250,
        probe_iters=50,
        hook_train=256,
        hook_test=128,
        monitor_every=1,
        seg=dict(num_train=16, num_val=8, iters=4, batch_size=4, workers=0),
        jobs=2,
        estimate=dict(mae=20, mocov3=25, student=20, eval=3, seg=20)),
    'cpu':
    dict(
        train_samples=10000,
        teacher_epochs=dict(mae=8, mocov3=8),
        student_epochs=2,
        batch_size=128,
        num_workers=0,
        amp=False,
        seeds=[0, 1, 2],
        ablation_seeds=[0],
        eval_train=10000,
        eval_test=10000,
        probe_iters=200,
        hook_train=2000,
        hook_test=1000,
        monitor_every=1,
        seg=dict(num_train=500, num_val=200, iters=300, batch_size=8,
                 workers=0),
        jobs=1,
        estimate=dict(mae=230, mocov3=890, student=100, eval=50, seg=330)),
    'gpu':
    dict(
        train_samples=None,
        teacher_epochs=dict(mae=16, mocov3=16),
        student_epochs=4,
        batch_size=512,
        num_workers=3,
        amp=True,
        seeds=[0, 1, 2],
        ablation_seeds=[0],
        eval_train=60000,
        eval_test=10000,
        probe_iters=200,
        hook_train=10000,
        hook_test=10000,
        monitor_every=2,
        seg=dict(num_train=2000, num_val=500, iters=1000, batch_size=16,
                 workers=2),
        jobs=4,
        estimate=dict(mae=100, mocov3=160, student=41, eval=5, seg=90)),
}


# ------------------------------------------------------------------ rows
def study_rows(preset: dict) -> List[dict]:
    """Every row of the study, in table order."""
    student = dict(
        kind='moma',
        init=None,
        mask_ratio=0.9,
        masked_teacher=False,
        neck='decoder',
        loss='smooth_l1',
        teachers=['mocov3', 'mae'],
        seeds=list(preset['seeds']),
        group='main')
    rows = [
        dict(id='random', group='reference', kind=None, teachers=[],
             init=None, seeds=[0], label='random student, untrained'),
        dict(id='teacher-mae', group='teacher', kind='mae', teachers=[],
             init=None, seeds=[0], label='MAE teacher'),
        dict(id='teacher-mocov3', group='teacher', kind='mocov3',
             teachers=[], init=None, seeds=[0], label='MoCo v3 teacher'),
        dict(student, id='moco-to-mae', teachers=['mocov3'], init='mae',
             label='MoCo v3 -> MAE-initialised student'),
        dict(student, id='mae-to-moco', teachers=['mae'], init='mocov3',
             label='MAE -> MoCo-v3-initialised student'),
        dict(student, id='moco-mae',
             label='MoCo v3 + MAE -> random student (MOMA)'),
        dict(student, id='moco-only', teachers=['mocov3'],
             label='MoCo v3 -> random student'),
        dict(student, id='mae-only', teachers=['mae'],
             label='MAE -> random student'),
    ]
    ablation = dict(student, group='ablation',
                    seeds=list(preset['ablation_seeds']))
    for ratio in (0.5, 0.75, 0.95):
        rows.append(dict(ablation, id=f'mask-{ratio:g}', mask_ratio=ratio,
                         label=f'MOMA, mask ratio {ratio:g}'))
    rows += [
        dict(ablation, id='masked-teacher', masked_teacher=True,
             label='MOMA, teacher input masked'),
        dict(ablation, id='neck-linear', neck='linear',
             label="MOMA, neck 'linear'"),
        dict(ablation, id='neck-mlp', neck='mlp', label="MOMA, neck 'mlp'"),
        dict(ablation, id='loss-mse', loss='mse', label='MOMA, MSE loss'),
    ]
    for row in rows:
        if row['kind'] == 'moma':
            row['epochs'] = preset['student_epochs']
        elif row['kind']:
            row['epochs'] = preset['teacher_epochs'][row['kind']]
        else:
            row['epochs'] = 0
    return rows


def run_key(row: dict, seed: int) -> str:
    return f'{row["id"]}-s{seed}'


# -------------------------------------------------------------- arguments
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='The MOMA evidence study on Fashion-MNIST: teachers, '
        'students, ablations, k-NN / linear / segmentation evaluation, the '
        'claims checked. Resumable.',
        epilog='Protocol: docs/study_protocol.md.')
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default='cpu',
        help='smoke: < 5 min on 2 cores, for CI; cpu: 2 cores in the '
        'background (default); gpu: one GPU, about 10 minutes')
    parser.add_argument(
        '--smoke', action='store_true', help='same as --preset smoke')
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
        '--force',
        action='store_true',
        help='retrain and re-evaluate even where results exist')
    parser.add_argument(
        '--data-root',
        default=None,
        help='folder with the Fashion-MNIST idx files (default: '
        '/usr/share/datasets/fashion-mnist)')
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset = 'smoke'
    if args.work_dir is None:
        args.work_dir = f'work_dirs/study-{args.preset}'
    for name in ('seeds', 'jobs'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name}={value}: allowed: an integer >= 1')
    return args


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


def device_name() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f'CPU ({os.cpu_count()} cores)'


# --------------------------------------------------------------- progress
class Progress:
    """Thread-safe progress lines with elapsed time and the study's ETA."""

    def __init__(self, log_path: str) -> None:
        self.start = time.time()
        self.left: Dict[str, float] = {}
        self.lock = threading.Lock()
        self.log_file = open(log_path, 'a')
        self.jobs = 1

    def plan(self, key: str, seconds: float) -> None:
        self.left[key] = seconds

    def finish(self, key: str) -> None:
        self.left[key] = 0.0

    def log(self, message: str, key: Optional[str] = None,
            key_left: Optional[float] = None) -> None:
        with self.lock:
            if key is not None and key_left is not None:
                self.left[key] = key_left
            elapsed = time.time() - self.start
            eta = sum(self.left.values()) / max(self.jobs, 1)
            line = (f'[study {fmt_time(elapsed)} | ETA {fmt_time(eta)}] '
                    f'{message}')
            print(line, flush=True)
            self.log_file.write(line + '\n')
            self.log_file.flush()

    def close(self) -> None:
        self.log_file.close()


class _RunProgress:
    """What ``demo.train_step`` calls, mapped onto one study run."""

    _STEP = re.compile(r'^(?:mae|mocov3|moma): ')

    def __init__(self, progress: Progress, key: str) -> None:
        self.progress = progress
        self.key = key
        self.done = self  # train_step calls progress.done.add(name)

    def add(self, name: str) -> None:
        self.progress.finish(self.key)

    def log(self, message: str, current: Optional[str] = None,
            current_left: Optional[float] = None) -> None:
        message = self._STEP.sub('', message)
        self.progress.log(f'{self.key}: {message}',
                          self.key if current else None, current_left)


# ------------------------------------------------------------- training
def load_module(path: str, name: str):
    """A module object of a script file."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The demo's training step, imported once (tools/ is not a package).
DEMO = load_module(DEMO_PATH, '_mmmoma_demo')
# MMEngine's Config.fromfile goes through temporary files and imports: runs
# in threads parse their configs one at a time, with the demo's lock.
_CONFIG_LOCK = DEMO._CONFIG_LOCK


def checkpoint_of(work: str, key: str, kind: str) -> str:
    return osp.join(work, 'runs', key, 'checkpoints', f'{kind}.pth')


def write_run_config(work: str, row: dict, seed: int, preset: dict,
                     extra_options: dict) -> Tuple[str, Dict[str, str]]:
    """Write ``runs/<run>/config.py``; return it and the teacher checkpoints.

    The file holds everything that makes the run differ from its base
    config, the extra ``--cfg-options`` included (as ``study_run``), so
    that the demo's config hash changes whenever any of it does.
    """
    from mmengine.config import Config
    key = run_key(row, seed)
    run_dir = osp.join(work, 'runs', key)
    os.makedirs(run_dir, exist_ok=True)
    teacher_seed = 0  # teachers are trained once; see the protocol
    teachers = {
        t: checkpoint_of(work, f'teacher-{t}-s{teacher_seed}', t)
        for t in row['teachers']
    }
    init = checkpoint_of(work, f'teacher-{row["init"]}-s{teacher_seed}',
                         row['init']) if row['init'] else None
    study_run = dict(
        row=row['id'],
        seed=seed,
        options=extra_options,
        # a retrained teacher makes the student stale
        depends_on={
            p: osp.getmtime(p)
            for p in list(teachers.values()) + ([init] if init else [])
        })
    lines = [
        f'# Generated by tools/study.py: run {key} ({row["label"]}).',
        '# Train it alone with tools/train.py and the --cfg-options in '
        'train.log.',
    ]
    if row['kind'] == 'moma':
        with _CONFIG_LOCK:
            base = Config.fromfile(STUDENT_CONFIG)
        neck = dict(mode=row['neck'])
        if row['neck'] == 'mlp':
            # choice: 4x the 128-d student (MomaNeck's default: 2048)
            neck['hidden_channels'] = 512
        model = dict(
            mask_ratio=row['mask_ratio'],
            mask_teacher_input=row['masked_teacher'],
            neck=neck,
            head=dict(loss_type=row['loss']))
        if set(row['teachers']) != set(base.model.teachers):
            model['teachers'] = dict(
                _delete_=True,
                **{t: base.model.teachers[t].to_dict()
                   for t in row['teachers']})
        if init:
            model['backbone'] = dict(
                init_cfg=dict(
                    type='Pretrained', checkpoint=init, prefix='backbone.'))
        lines += [
            f'_base_ = {STUDENT_CONFIG!r}',
            f'model = {pprint.pformat(model, sort_dicts=True)}',
        ]
    else:
        lines.append(f'_base_ = {TEACHER_CONFIGS[row["kind"]]!r}')
    lines += [
        f'randomness = dict(seed={seed}, diff_rank_seed=True)',
        f'study_run = {pprint.pformat(study_run, sort_dicts=True)}',
    ]
    path = osp.join(run_dir, 'config.py')
    text = '\n'.join(lines) + '\n'
    if not osp.isfile(path) or open(path).read() != text:
        with open(path, 'w') as f:
            f.write(text)
    return path, teachers


def train_run(row: dict, seed: int, args: argparse.Namespace, preset: dict,
              progress: Progress, device: str) -> dict:
    """Train (or reuse) one run through ``demo.train_step``."""
    work = osp.abspath(args.work_dir)
    key = run_key(row, seed)
    kind = row['kind']
    extra = {
        # the k-NN monitor: before training (epoch 0) and every few epochs
        'custom_hooks.0.interval': preset['monitor_every'],
        'custom_hooks.0.eval_at_start': True,
    }
    config, teachers = write_run_config(work, row, seed, preset, extra)
    step = DEMO.Step(
        kind,
        config,
        row['label'],
        run_dir=osp.join(work, 'runs', key, kind),
        out=checkpoint_of(work, key, kind),
        extra_options=extra)
    step_args = argparse.Namespace(
        preset=args.preset, force=args.force, data_root=args.data_root)
    step_preset = dict(preset, epochs={kind: row['epochs']})
    meta = DEMO.train_step(step, step_args, step_preset,
                           _RunProgress(progress, key), teachers)
    # where it was trained, kept with the checkpoint it describes
    ckpt = checkpoint_of(work, key, kind)
    info_path = osp.join(work, 'runs', key, 'device.json')
    info = None
    if osp.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
    if not info or info.get('mtime') != osp.getmtime(ckpt):
        info = dict(mtime=osp.getmtime(ckpt), device=device,
                    jobs=progress.jobs)
        with open(info_path, 'w') as f:
            json.dump(info, f)
    return dict(meta, device=info['device'], jobs=info['jobs'],
                checkpoint=ckpt)


# ------------------------------------------------------------- evaluation
class Evaluator:
    """k-NN and linear probe of frozen class tokens, one model at a time."""

    def __init__(self, preset: dict, data_root: Optional[str]) -> None:
        import torch
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import MODELS
        from torch.utils.data import DataLoader

        from mmmoma.datasets import FashionMNISTIdx
        self.torch = torch
        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
        cfg = Config.fromfile(STUDENT_CONFIG)
        pre = cfg.model.data_preprocessor if 'data_preprocessor' in \
            cfg.model else cfg.data_preprocessor
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.model = MODELS.build(
                dict(
                    type='ImageClassifier',
                    backbone=dict(
                        type='VisionTransformer',
                        arch=EVAL_ARCH,
                        img_size=28,
                        patch_size=4,
                        out_type='raw'),
                    data_preprocessor=dict(
                        type='ClsDataPreprocessor',
                        mean=list(pre.mean),
                        std=list(pre.std),
                        to_rgb=False))).to(self.device)
        from mmengine.dataset import default_collate
        root = {'data_root': data_root} if data_root else {}
        self.loaders = {}
        for split, num in (('train', preset['eval_train']),
                           ('test', preset['eval_test'])):
            dataset = FashionMNISTIdx(
                **root,
                split=split,
                with_label=True,
                img_size=28,
                num_samples=num,
                pipeline=[dict(type='PackInputs')])
            self.loaders[split] = DataLoader(
                dataset,
                batch_size=512,
                shuffle=False,
                num_workers=0,
                collate_fn=default_collate)
        self.probe = dict(PROBE, max_iter=preset['probe_iters'])
        self.protocol = dict(
            KNN, **self.probe, feature='cls_token',
            eval_train=preset['eval_train'], eval_test=preset['eval_test'],
            data_root=data_root)

    def load(self, checkpoint: Optional[str]) -> None:
        torch = self.torch
        backbone = self.model.backbone
        if checkpoint is None:
            # the study's student (MAEViT: fixed sin-cos positions, its own
            # init), randomly initialised; reproducible
            from mmpretrain.models import MAEViT
            torch.manual_seed(0)
            student = MAEViT(arch=EVAL_ARCH, img_size=28, patch_size=4)
            student.init_weights()
            backbone.load_state_dict(student.state_dict(), strict=True)
            return
        state = torch.load(checkpoint, map_location='cpu',
                           weights_only=True)['state_dict']
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
        backbone.load_state_dict(state, strict=True)

    def evaluate(self, checkpoint: Optional[str]) -> dict:
        from mmmoma.evaluation import (extract_features, knn_accuracy,
                                       linear_probe)
        start = time.time()
        self.load(checkpoint)
        train = extract_features(self.model, self.loaders['train'])
        test = extract_features(self.model, self.loaders['test'])
        knn = knn_accuracy(*train, *test, num_classes=10, **KNN)
        probe = linear_probe(*train, *test, num_classes=10, **self.probe)
        return dict(
            knn_top1=knn['top1'],
            knn_top5=knn['top5'],
            linear_top1=probe['top1'],
            linear_top5=probe['top5'],
            linear_train_top1=probe['train_top1'],
            eval_seconds=time.time() - start)


def evaluate_run(evaluator: Evaluator, work: str, key: str,
                 checkpoint: Optional[str], force: bool,
                 progress: Progress) -> dict:
    """Cached k-NN / linear results of one run."""
    cache = osp.join(work, 'eval', f'{key}.json')
    cache_key = dict(
        protocol=evaluator.protocol,
        checkpoint=checkpoint,
        mtime=osp.getmtime(checkpoint) if checkpoint else None)
    if not force and osp.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get('key') == cache_key:
            progress.finish(f'eval {key}')
            return cached['results']
    results = evaluator.evaluate(checkpoint)
    os.makedirs(osp.dirname(cache), exist_ok=True)
    with open(cache, 'w') as f:
        json.dump(dict(key=cache_key, results=results), f, indent=1)
    progress.finish(f'eval {key}')
    progress.log(f'{key}: k-NN {results["knn_top1"]:.2f}%, linear '
                 f'{results["linear_top1"]:.2f}% '
                 f'({results["eval_seconds"]:.0f} s)')
    return results


# ----------------------------------------------------------- segmentation
def _tool_env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    env.setdefault('PYTHONWARNINGS', 'ignore')
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _run_tool(cmd: List[str], log_path: str, what: str) -> str:
    with open(log_path, 'w') as log:
        log.write(' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_tool_env())
        log.write(proc.stdout)
    if proc.returncode != 0:
        tail = '\n'.join(proc.stdout.splitlines()[-40:])
        raise SystemExit(f'{what} failed with exit code {proc.returncode}; '
                         f'the last lines of {log_path}:\n{tail}')
    return proc.stdout


def make_scenes(work: str, preset: dict, data_root: Optional[str],
                progress: Progress) -> str:
    """The composed-scene dataset (ADE20K layout), made once per setting."""
    seg = preset['seg']
    out = osp.join(work, 'seg', 'scenes')
    wanted = dict(num_train=seg['num_train'], num_val=seg['num_val'],
                  size=64, seed=0)
    meta_path = osp.join(out, 'meta.json')
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        have = dict(
            num_train=meta['splits']['training']['num_images'],
            num_val=meta['splits']['validation']['num_images'],
            size=meta['size'],
            seed=meta['seed'])
        if have == wanted:
            return out
    scenes = load_module(SCENES_PATH, '_study_scenes')
    kwargs = {'fmnist_root': data_root} if data_root else {}
    scenes.make_scenes(out, overwrite=True, command='tools/study.py',
                       **kwargs, **wanted)
    progress.log(f'segmentation data: {seg["num_train"]} + {seg["num_val"]}'
                 f' scenes of 64x64 in {out}')
    return out


_MIOU = re.compile(r'Iter\(val\).*?mIoU: ([0-9.]+)')


def _read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def segment(name: str, checkpoint: str, scenes: str, work: str,
            preset: dict, force: bool, progress: Progress) -> dict:
    """UperNet on the scenes with ``checkpoint`` as backbone; its mIoU.

    ``tools/train.py`` trains and then validates the final weights on the
    validation scenes (the config's test set too), in the same process:
    one start-up per model instead of two with ``tools/test.py``.
    """
    from mmengine.config import Config
    seg = preset['seg']
    iters = seg['iters']
    run_dir = osp.join(work, 'seg', name)
    with _CONFIG_LOCK:
        text = Config.fromfile(SEG_CONFIG).pretty_text
    key = dict(
        checkpoint=checkpoint,
        mtime=osp.getmtime(checkpoint),
        config_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
        seg=seg,
        scenes=_read_json(osp.join(scenes, 'meta.json'))['splits'])
    cache = osp.join(run_dir, 'result.json')
    if not force and osp.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get('key') == key:
            progress.finish(f'seg {name}')
            return cached['results']
    if osp.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    roots = [f'{split}_dataloader.dataset.data_root={scenes}'
             for split in ('train', 'val')]
    # a warm-up of at least 2 iterations: MMEngine's LinearLR with end=1
    # never leaves its start factor
    warmup = min(100, max(2, iters // 10))
    progress.log(f'segmentation {name}: UperNet, {iters} iterations')
    start = time.time()
    out = _run_tool([
        sys.executable,
        osp.join(REPO_ROOT, 'tools', 'train.py'), SEG_CONFIG, '--work-dir',
        run_dir, '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={checkpoint}', *roots,
        f'train_dataloader.batch_size={seg["batch_size"]}',
        f'train_dataloader.num_workers={seg["workers"]}',
        f'train_dataloader.persistent_workers={seg["workers"] > 0}',
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        f'default_hooks.logger.interval={max(1, min(50, iters // 4))}'
    ], osp.join(run_dir, 'train.log'), f'segmentation training ({name})')
    found = _MIOU.findall(out)
    if not found:
        raise SystemExit(f'segmentation ({name}): no validation mIoU in '
                         f'{osp.join(run_dir, "train.log")}')
    results = dict(miou=float(found[-1]), seg_seconds=time.time() - start)
    with open(cache, 'w') as f:
        json.dump(dict(key=key, results=results), f, indent=1)
    progress.finish(f'seg {name}')
    progress.log(f'segmentation {name}: mIoU {results["miou"]:.2f} '
                 f'({fmt_time(results["seg_seconds"])})')
    return results


# ----------------------------------------------------------- aggregation
def mean_std(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (None with fewer than 2)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def aggregate(rows: List[dict], runs: Dict[str, dict], preset: dict) -> None:
    """Per row: mean and std over its seeds of every metric, in place."""
    samples = preset['train_samples'] or 60000
    for row in rows:
        found = [runs[run_key(row, s)] for s in row['seeds']]
        row['runs'] = [run_key(row, s) for s in row['seeds']]
        for metric in ('knn_top1', 'linear_top1', 'train_seconds'):
            row[metric], row[metric + '_std'] = mean_std(
                [r.get(metric) for r in found])
        row['images_seen'] = row['epochs'] * samples
        row['devices'] = sorted({r.get('device') for r in found
                                 if r.get('device')})
        curves = {}
        for r in found:
            for point in r.get('monitor_knn', []):
                curves.setdefault(point['epoch'], []).append(point['top1'])
        row['knn_curve'] = [[e, sum(v) / len(v)]
                            for e, v in sorted(curves.items())]


def pooled_std(rows: List[dict], metric: str) -> Optional[float]:
    """Root mean variance over the main rows with 2 or more seeds."""
    stds = [r[metric + '_std'] for r in rows
            if r['group'] == 'main' and r[metric + '_std'] is not None]
    if not stds:
        return None
    return math.sqrt(sum(s * s for s in stds) / len(stds))


def check_claims(rows: List[dict]) -> List[dict]:
    """The four claims, each decided by the rule of the protocol."""
    by_id = {r['id']: r for r in rows}
    claims = []

    def best(ids, metric):
        return max((by_id[i] for i in ids), key=lambda r: r[metric])

    specs = [
        ('1', 'Distilling MoCo v3 and MAE together beats either alone',
         lambda m: (by_id['moco-mae'], best(['moco-only', 'mae-only'], m)),
         'gt', 'MoCo v3 + MAE student minus the better single-teacher '
         'student (same init, same budget)'),
        ('2', "The student reaches its teachers' quality with far fewer "
         'epochs',
         lambda m: (by_id['moco-mae'],
                    best(['teacher-mae', 'teacher-mocov3'], m)),
         'ge', 'MoCo v3 + MAE student minus the better teacher'),
        ('3', 'An extremely high mask ratio (0.9) works',
         lambda m: (by_id['moco-mae'], best(['mask-0.5', 'mask-0.75'], m)),
         'ge', 'mask 0.9 minus the better of mask 0.5 / 0.75'),
        ('4', "Masking the teacher's input hurts",
         lambda m: (by_id['moco-mae'], by_id['masked-teacher']),
         'gt', 'teacher input unmasked minus masked'),
    ]
    for number, text, pick, rule, what in specs:
        checks = []
        for metric in ('knn_top1', 'linear_top1'):
            a, b = pick(metric)
            spread = pooled_std(rows, metric)
            diff = a[metric] - b[metric]
            margin = spread or 0.0
            held = diff > margin if rule == 'gt' else diff >= -margin
            checks.append(
                dict(metric=metric, a=a['id'], b=b['id'],
                     a_value=a[metric], b_value=b[metric], diff=diff,
                     spread=spread, held=held))
        passed = sum(c['held'] for c in checks)
        verdict = ('held' if passed == len(checks) else
                   'did not hold' if passed == 0 else 'mixed')
        claim = dict(number=number, claim=text, comparison=what, rule=rule,
                     checks=checks, verdict=verdict)
        if number == '2':
            student = by_id['moco-mae']
            teacher = best(['teacher-mae', 'teacher-mocov3'], 'knn_top1')
            claim['epochs'] = dict(student=student['epochs'],
                                   teacher=teacher['epochs'])
        if number == '3':
            claim['mask_0.95'] = {m: by_id['mask-0.95'][m]
                                  for m in ('knn_top1', 'linear_top1')}
        claims.append(claim)
    return claims


# ---------------------------------------------------------------- output
def _pm(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return '-'
    return f'{mean:.2f} ± {std:.2f}' if std is not None else f'{mean:.2f}'


def render(rows: List[dict], claims: List[dict], info: dict) -> str:
    """results.md: the table, the claims, how it was made."""
    preset = info['settings']
    lines = [
        '# MOMA evidence study on Fashion-MNIST', '',
        f'Generated by `{info["command"]}` (preset `{info["preset"]}`); '
        'do not edit by hand. Protocol: `docs/study_protocol.md`.', '',
        '| row | teachers | init | mask ratio | seeds | epochs | '
        'images seen | k-NN top-1 (%) | linear top-1 (%) | mIoU (%) | '
        'wall time | device |',
        '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    for row in rows:
        teachers = ' + '.join(TEACHER_NAMES[t] for t in row['teachers']) \
            or '-'
        if row['group'] == 'teacher':
            teachers = f'({TEACHER_NAMES[row["kind"]]} itself)'
        init = f'{TEACHER_NAMES[row["init"]]} teacher' if row['init'] \
            else 'random'
        if row.get('mask_ratio'):
            ratio = f'{row["mask_ratio"]:g}'
        else:  # a teacher's own pretraining: MAE masks 75%
            ratio = '0.75 (MAE)' if row['kind'] == 'mae' else '-'
        label = row['label']
        if row.get('masked_teacher'):
            ratio += ' (teacher too)'
        wall = fmt_time(row['train_seconds'])
        if row['train_seconds_std'] is not None:
            wall += f' ± {fmt_time(row["train_seconds_std"])}'
        miou = f'{row["miou"]:.2f}' if row.get('miou') is not None else '-'
        lines.append(
            f'| `{row["id"]}` {label} | {teachers} | {init} | {ratio} | '
            f'{len(row["seeds"])} | {row["epochs"]} | '
            f'{row["images_seen"]:,} | '
            f'{_pm(row["knn_top1"], row["knn_top1_std"])} | '
            f'{_pm(row["linear_top1"], row["linear_top1_std"])} | {miou} | '
            f'{wall} | {", ".join(row["devices"]) or "-"} |')
    samples = preset['train_samples'] or 60000
    lines += [
        '',
        f'- Budget: every student row trains {preset["student_epochs"]} '
        f'epoch(s) of {samples:,} images (batch {preset["batch_size"]}); '
        f'the teachers {preset["teacher_epochs"]["mae"]} (MAE) and '
        f'{preset["teacher_epochs"]["mocov3"]} (MoCo v3) epochs. Students '
        'and teachers: ViT 128-d x4, 4x4 patches of 28x28 images. An '
        "initialised student's epochs exclude its teacher's.",
        '- Main rows: mean ± sample std over seeds '
        f'{preset["seeds"]}; ablations: seeds {preset["ablation_seeds"]}. '
        'Teachers are trained once (seed 0); the spread is that of student '
        'training only.',
        f'- k-NN (k={KNN["k"]}, T={KNN["temperature"]}) and linear probe '
        '(standardised features, L-BFGS logistic regression, '
        f'{preset["probe_iters"]} iterations, weight decay '
        f'{PROBE["weight_decay"]}) on the class token: bank / probe '
        f'training set = the first {preset["eval_train"]:,} train images, '
        f'test = the first {preset["eval_test"]:,} test images.',
        f'- mIoU: UperNet, {preset["seg"]["iters"]} iterations of batch '
        f'{preset["seg"]["batch_size"]} on {preset["seg"]["num_train"]} '
        f'composed 64x64 scenes, tested on {preset["seg"]["num_val"]}, for '
        f'the teachers and the best student by k-NN ({info["best"]}, seed '
        '0).',
        f'- Wall time: training, k-NN monitoring included, '
        f'{info["jobs"]} run(s) at once; the whole study took '
        f'{fmt_time(info["total_seconds"])} in this invocation (reused '
        'results count 0).',
        '',
        '## Claims',
        '',
        'Decision rule (protocol): a difference counts when it exceeds the '
        'spread, the pooled standard deviation over seeds of the main rows '
        '(k-NN: ' + _opt(info['spread']['knn_top1']) + ', linear: ' +
        _opt(info['spread']['linear_top1']) + '); a claim holds when it '
        'holds for both metrics, "mixed" when for one.',
        '',
        '| claim | comparison | k-NN: difference (rule) | linear: '
        'difference (rule) | verdict |',
        '|---|---|---:|---:|---|',
    ]
    for claim in claims:
        cells = []
        for check in claim['checks']:
            margin = check['spread'] or 0.0
            if claim['rule'] == 'gt':
                rule = f'> {margin:.2f}'
            else:
                rule = f'>= -{margin:.2f}' if margin else '>= 0.00'
            cells.append(
                f'{check["a_value"]:.2f} - {check["b_value"]:.2f} '
                f'(`{check["b"]}`) = {check["diff"]:+.2f} '
                f'({rule}: {"yes" if check["held"] else "no"})')
        extra = ''
        if 'epochs' in claim:
            e = claim['epochs']
            extra = (f'; student {e["student"]} vs teacher {e["teacher"]} '
                     'epochs')
        if 'mask_0.95' in claim:
            m = claim['mask_0.95']
            extra = (f'; mask 0.95: k-NN {m["knn_top1"]:.2f}, linear '
                     f'{m["linear_top1"]:.2f}')
        lines.append(f'| {claim["number"]}. {claim["claim"]} | '
                     f'{claim["comparison"]}{extra} | {cells[0]} | '
                     f'{cells[1]} | **{claim["verdict"]}** |')
    if info['preset'] == 'smoke':
        lines += [
            '', '**Smoke preset: a few hundred images and one epoch; the '
            'numbers test the tool, not the claims.**'
        ]
    return '\n'.join(lines)


def _opt(value: Optional[float]) -> str:
    return f'{value:.2f}' if value is not None else '0, one seed'


def plot(rows: List[dict], work: str, info: dict) -> List[str]:
    """knn_vs_epochs.png and acc_vs_mask_ratio.png."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_id = {r['id']: r for r in rows}
    preset = info['settings']
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row['group'] not in ('teacher', 'main') or not row['knn_curve']:
            continue
        xs, ys = zip(*row['knn_curve'])
        style = '-o' if row['group'] == 'teacher' else '--s'
        ax.plot(xs, ys, style, label=row['label'], markersize=4)
    ax.set_xlabel('training epochs of the model itself')
    ax.set_ylabel('k-NN top-1 (%), monitor')
    ax.set_title(f'k-NN during training ({preset["hook_train"]:,} bank / '
                 f'{preset["hook_test"]:,} test images; students: mean '
                 'over seeds)', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(osp.join(work, 'knn_vs_epochs.png'))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    points = [(0.9, by_id['moco-mae'])] + [
        (r, by_id[f'mask-{r:g}']) for r in (0.5, 0.75, 0.95)
    ]
    points.sort(key=lambda p: p[0])
    for metric, name in (('knn_top1', 'k-NN'), ('linear_top1', 'linear')):
        xs = [p[0] for p in points]
        ys = [p[1][metric] for p in points]
        err = [p[1][metric + '_std'] or 0.0 for p in points]
        ax.errorbar(xs, ys, yerr=err, fmt='-o', capsize=3, label=name)
    ax.set_xlabel('student mask ratio')
    ax.set_ylabel('top-1 (%) on the test split')
    ax.set_title('MoCo v3 + MAE student (0.9: mean ± std over seeds)',
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(osp.join(work, 'acc_vs_mask_ratio.png'))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------ main
def main(argv=None) -> dict:
    args = parse_args(argv)
    preset = dict(PRESETS[args.preset])
    if args.seeds is not None:
        preset['seeds'] = list(range(args.seeds))
    jobs = args.jobs or preset['jobs']
    command = 'python tools/study.py' + ''.join(
        f' {a}' for a in (argv if argv is not None else sys.argv[1:]))
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    import mmmoma  # noqa: F401  (compat fixes before mmpretrain)
    from mmengine.logging import MMLogger

    from mmmoma.datasets import FashionMNISTIdx
    FashionMNISTIdx(  # fail now, with the install hint
        **({'data_root': args.data_root} if args.data_root else {}),
        split='test',
        num_samples=1)
    MMLogger.get_instance('mmengine', log_level='WARNING')
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    log_path = osp.join(work, 'study_log.txt')
    if osp.isfile(log_path):
        os.remove(log_path)  # the log of this invocation only
    progress = Progress(log_path)
    progress.jobs = jobs
    device = device_name()
    if jobs > 1 and device.startswith('CPU'):
        # runs side by side share the cores instead of fighting over them
        os.environ.setdefault('OMP_NUM_THREADS',
                              str(max(1, (os.cpu_count() or 1) // jobs)))

    rows = study_rows(preset)
    est = preset['estimate']
    for row in rows:
        for seed in row['seeds']:
            key = run_key(row, seed)
            if row['kind']:
                progress.plan(key, est[row['kind']] if row['group'] ==
                              'teacher' else est['student'])
            progress.plan(f'eval {key}', est['eval'])
    for name in ('teacher-mae', 'teacher-mocov3', 'best'):
        progress.plan(f'seg {name}', est['seg'])
    runs_total = sum(len(r['seeds']) for r in rows if r['kind'])
    progress.log(f'preset {args.preset}: {len(rows)} rows, {runs_total} '
                 f'training runs, {jobs} at once, on {device}; outputs in '
                 f'{work}')

    runs: Dict[str, dict] = {}

    def train_all(selected: List[dict]) -> None:
        tasks = [(row, seed) for row in selected for seed in row['seeds']]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {
                run_key(row, seed): pool.submit(train_run, row, seed, args,
                                                preset, progress, device)
                for row, seed in tasks
            }
            for key, future in futures.items():
                runs[key] = future.result()

    train_all([r for r in rows if r['group'] == 'teacher'])
    train_all([r for r in rows if r['kind'] == 'moma'])

    progress.log('evaluation: k-NN and linear probe of every run')
    evaluator = Evaluator(preset, args.data_root)
    for row in rows:
        for seed in row['seeds']:
            key = run_key(row, seed)
            run = runs.setdefault(
                key, dict(epochs=0, images_seen=0, train_seconds=None,
                          device=None, monitor_knn=[], checkpoint=None))
            run.update(
                evaluate_run(evaluator, work, key, run['checkpoint'],
                             args.force, progress))
    aggregate(rows, runs, preset)

    scenes = make_scenes(work, preset, args.data_root, progress)
    by_id = {r['id']: r for r in rows}
    best = max((r for r in rows if r['kind'] == 'moma'),
               key=lambda r: r['knn_top1'])
    seg_rows = [by_id['teacher-mae'], by_id['teacher-mocov3'], best]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(segment, row['id'],
                        runs[run_key(row, row['seeds'][0])]['checkpoint'],
                        scenes, work, preset, args.force, progress)
            for row in seg_rows
        ]
        for row, future in zip(seg_rows, futures):
            row['miou'] = future.result()['miou']
    for name in ('teacher-mae', 'teacher-mocov3', 'best'):
        progress.finish(f'seg {name}')

    spread = {m: pooled_std(rows, m) for m in ('knn_top1', 'linear_top1')}
    claims = check_claims(rows)
    info = dict(
        command=command,
        preset=args.preset,
        settings={k: v for k, v in preset.items() if k != 'estimate'},
        jobs=jobs,
        device=device,
        best=best['id'],
        spread=spread,
        total_seconds=time.time() - progress.start)
    table = render(rows, claims, info)
    with open(osp.join(work, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(
            dict(info, protocol=dict(knn=KNN, probe=evaluator.probe,
                                     feature='cls_token'),
                 rows=rows, runs=runs, claims=claims),
            f, indent=1)
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


if __name__ == '__main__':
    main()
