"""One training run of the demo chain or of the study: its
``--cfg-options``, the ``tools/train.py`` process, the published weights.

A run is reused when its published checkpoint holds the same settings.
"""
import glob
import json
import os
import os.path as osp
import re
import resource
import shutil
import sys
import time
from typing import Dict, List, NamedTuple, Optional

from mmmoma.fileio import atomic_save, load_checkpoint
from .common import REPO_ROOT, Progress, config_hash, fmt_time, run_tool


class Step(NamedTuple):
    """One training run: which algorithm, which config, where it goes."""
    name: str  # 'mae', 'mocov3' or 'moma': selects the step's options
    config: str  # config file path
    title: str  # for progress lines
    run_dir: str  # MMEngine's work dir
    out: str  # the published weights-only checkpoint
    label: str = ''  # prefix of the progress lines, e.g. 'step 1/4 '
    extra_options: Optional[dict] = None  # --cfg-options applied last
    key: Optional[str] = None  # its item in the Progress (default: name)
    tag: Optional[str] = None  # prefix of per-epoch lines (label + name)


def read_meta(path: str) -> Optional[dict]:
    """The ``meta`` of a published checkpoint, or None if unreadable."""
    if not osp.isfile(path):
        return None
    try:
        return load_checkpoint(path, name=path)['meta']
    except (ValueError, KeyError, TypeError):  # a broken file is retrained
        return None


def publish(run_dir: str, out: str, meta: dict) -> None:
    """Save the weights of a run's last checkpoint, and ``meta``, to ``out``.

    MMEngine's checkpoints also hold the message hub and optimizer; the
    published file holds tensors and plain values only.
    """
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    state = dict(load_checkpoint(last, name=last)['state_dict'])
    meta = dict(meta, source=osp.relpath(last, osp.dirname(out)))
    os.makedirs(osp.dirname(out), exist_ok=True)
    atomic_save({'state_dict': state, 'meta': meta}, out)


class MonitorReader:
    """The k-NN monitor of a training run, from its ``scalars.json``.

    ``KNNEvalHook`` writes ``knn/top1`` there; the epoch of each value is
    that of the last training line before it (0: before training).
    Read again as the run goes on, it returns only the new values.

    Args:
        run_dir (str): MMEngine's work dir of the run.
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.offset = 0
        self.epoch = 0
        self.points: List[dict] = []

    def read(self) -> List[dict]:
        """New ``{'epoch', 'top1'}`` values since the last call."""
        found = glob.glob(osp.join(self.run_dir, '*', 'vis_data',
                                   'scalars.json'))
        if not found:
            return []
        new = []
        with open(found[0], 'rb') as f:
            f.seek(self.offset)
            for line in f:
                if not line.endswith(b'\n'):  # still being written
                    break
                self.offset += len(line)
                entry = json.loads(line)
                if 'epoch' in entry:
                    self.epoch = entry['epoch']
                if 'knn/top1' in entry:
                    # 2 decimals, as the hook logs it
                    new.append(dict(epoch=self.epoch,
                                    top1=round(entry['knn/top1'], 2)))
        self.points += new
        return new


# Display only: MMEngine's own ETA of the run, from its log lines, for the
# progress lines (scalars.json does not hold it). No result comes from here.
_PROGRESS = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\].*?'
                       r'eta: ([0-9:]+(?: day[s]?, [0-9:]+)?)')


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
        # also: every epoch has a training line (MonitorReader's epochs)
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


def step_settings(step: Step, preset_name: str, preset: dict,
                  checkpoints: Dict[str, str],
                  data_root: Optional[str] = None) -> dict:
    """What a published checkpoint must hold to be reused for ``step``
    (the arguments are :func:`train_step`'s), as JSON values."""
    settings = dict(
        preset=preset_name,
        config=osp.basename(step.config),
        config_hash=config_hash(step.config),  # an edited config retrains
        epochs=preset['epochs'][step.name],
        train_samples=preset['train_samples'],
        batch_size=preset['batch_size'],
        data_root=data_root,
        # a retrained teacher makes the student stale
        teachers={k: osp.getmtime(v)
                  for k, v in checkpoints.items()}
        if step.name == 'moma' else None)
    if step.extra_options:
        settings['extra_options'] = step.extra_options
    return json.loads(json.dumps(settings))


def train_step(step: Step, preset_name: str, preset: dict,
               progress: Progress, checkpoints: Dict[str, str],
               data_root: Optional[str] = None,
               force: bool = False) -> dict:
    """Run (or reuse) one training step through ``tools/train.py``.

    Args:
        step (Step): The run.
        preset_name (str): The preset's name, kept in the settings.
        preset (dict): The preset (``epochs`` per step name and the rest of
            :data:`PRESETS`' keys).
        progress (Progress): Where the progress lines go.
        checkpoints (dict[str, str]): Teacher checkpoints of a ``moma`` step.
        data_root (str, optional): ``--data-root``. Defaults to None.
        force (bool): Retrain even if ``step.out`` has the same settings.
            Defaults to False.

    Returns:
        dict: The meta of the published checkpoint: ``settings``,
        ``epochs``, ``images_seen``, ``train_seconds``, ``cpu_seconds``,
        ``monitor_knn`` (``[{'epoch', 'top1'}]``) and ``source``.
    """
    name, run_dir, out = step.name, step.run_dir, step.out
    key = step.key or name
    tag = step.tag if step.tag is not None else f'{step.label}{name}: '
    settings = step_settings(step, preset_name, preset, checkpoints,
                             data_root)
    meta = None if force else read_meta(out)
    if meta is not None and meta.get('settings') == settings:
        progress.finish(key)
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
    options = step_options(name, preset, data_root, checkpoints)
    options.update(step.extra_options or {})
    cmd += ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
    log_path = osp.join(run_dir, 'train.log')
    progress.log(f'{step.label}{step.title}: training '
                 f'{settings["epochs"]} epoch(s), log in {log_path}', key)
    monitor = MonitorReader(run_dir)
    last_print = [0.0]

    def show(line: str) -> None:
        match = _PROGRESS.search(line)
        if match and time.time() - last_print[0] > 5:
            last_print[0] = time.time()
            epoch, it, total, eta = match.groups()
            progress.log(
                f'{tag}epoch {epoch}/{settings["epochs"]} iter {it}/{total}, '
                f'step ETA {fmt_time(_eta_seconds(eta), hours=False)}', key,
                _eta_seconds(eta))
        for point in monitor.read():
            progress.log(f'{tag}k-NN (monitor, {preset["hook_train"]} bank '
                         f'/ {preset["hook_test"]} queries) after epoch '
                         f'{point["epoch"]}: top-1 {point["top1"]:.2f}%', key)

    start = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_start = usage.ru_utime + usage.ru_stime
    run_tool(cmd, log_path, f'{step.label}{step.title}', on_line=show)
    seconds = time.time() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_start
    monitor.read()
    samples = preset['train_samples'] or 60000
    meta = dict(
        settings=settings,
        epochs=settings['epochs'],
        images_seen=settings['epochs'] * samples,
        train_seconds=seconds,
        # all cores together: shows how busy the machine was next to the
        # wall time (about 2x wall time on an idle 2-core machine)
        cpu_seconds=cpu_seconds,
        monitor_knn=monitor.points)
    publish(run_dir, out, meta)
    progress.finish(key)
    progress.log(f'{step.label}{step.title}: done in '
                 f'{fmt_time(seconds, hours=False)} -> {out}')
    return read_meta(out)
