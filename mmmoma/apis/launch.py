"""Train or test from a config: ``tools/train.py`` and ``tools/test.py``.

Both are thin layers over MMEngine's Runner with MMPretrain's command line;
the config's ``default_scope`` decides which codebase builds it, and mmmoma
reaches it through ``custom_imports``. They share the launcher check, the
``--work-dir`` / ``--launcher`` / ``--cfg-options`` merging, the data-root
check, the CPU distributed setup and the Runner build. Examples::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
    bash tools/dist_train.sh CONFIG 8 [ARGS]     # one process per GPU
    bash tools/dist_train.sh CONFIG 2 [ARGS]     # CPU only: 2 gloo processes
    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [ARGS]
"""
import argparse
import ast
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.evaluator import DumpResults
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

from mmmoma.datasets.checked_loading import use_checked_loading
from mmmoma.datasets.checks import check_data_roots, check_samples
from mmmoma.fileio import load_checkpoint

#: What each ``--launcher`` reads from the environment (MMEngine's
#: ``init_dist``).
LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
            'OMPI_COMM_WORLD_SIZE'),
}


# ------------------------------------------------------- CPU distributed
def _replace_sync_bn(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'type' and value in ('SyncBN', 'MMSyncBN'):
                node[key] = 'BN'
            else:
                _replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _replace_sync_bn(item)


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a config for a multi-process launch on a machine with no GPU.

    MMEngine initialises NCCL and calls the CUDA-only ``set_device`` unless a
    process group already exists, wraps the model with
    ``device_ids=[LOCAL_RANK]`` (invalid for a CPU module), and SyncBN has no
    CPU kernel. With a GPU present, or with ``launcher='none'``, this does
    nothing.

    Args:
        cfg (Config): The full config; edited in place.
        launcher (str): The job launcher (``none``, ``pytorch``, ``slurm``,
            ``mpi``).

    Returns:
        bool: Whether the config was changed for CPU.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    import torch.distributed as dist
    from mmengine.dist import init_dist
    cfg.setdefault('env_cfg', {})
    dist_cfg = dict(cfg.env_cfg.get('dist_cfg', {}))
    dist_cfg['backend'] = 'gloo'
    cfg.env_cfg['dist_cfg'] = dist_cfg
    if not dist.is_initialized():
        if launcher == 'pytorch':
            # MMEngine's own init calls torch.cuda.set_device first.
            init_kwargs = {k: v for k, v in dist_cfg.items() if k != 'timeout'}
            dist.init_process_group(**init_kwargs)
        else:
            init_dist(launcher, **dist_cfg)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    _replace_sync_bn(cfg.model)
    cfg.sync_bn = None
    return True


# ---------------------------------------------------------- shared pieces
def _parser(description: str, config_help: str,
            work_dir_help: str) -> argparse.ArgumentParser:
    """A parser with the config and ``--work-dir``, the first arguments."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    return parser


def _parse(parser: argparse.ArgumentParser, cfg_example: str,
           argv: Optional[List[str]]) -> argparse.Namespace:
    """Add ``--cfg-options``, ``--launcher`` and ``--local_rank``; parse."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy pairs merged into the '
        f'config, e.g. {cfg_example} key="[a,b]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def check_launcher(launcher: str) -> None:
    """Fail when the environment lacks what ``launcher`` reads.

    Args:
        launcher (str): The ``--launcher`` value.

    Raises:
        SystemExit: A variable of :data:`LAUNCHER_ENV` is not set.
    """
    missing = [
        k for k in LAUNCHER_ENV.get(launcher, ()) if k not in os.environ
    ]
    if missing:
        raise SystemExit(
            f'--launcher {launcher}: the environment variables {missing} are '
            f'not set, so this process was not started by a {launcher} '
            'launcher. Allowed: --launcher none for one process, --launcher '
            'pytorch under torchrun (bash tools/dist_train.sh CONFIG N), '
            'slurm under srun, mpi under mpirun.')


def load_config(path: str, name: str = 'config') -> Config:
    """``Config.fromfile``, failing with the argument named when the file
    is missing (MMEngine says only ``file "x" does not exist``).

    Args:
        path (str): The config path from the command line.
        name (str): The argument, for the message. Defaults to 'config'.

    Returns:
        Config: The loaded config.
    """
    if not osp.isfile(path):
        raise SystemExit(
            f'{name} {path!r}: no such file. Allowed: an MMEngine config '
            '(.py), e.g. configs/moma/moma_vit-b_moco-mae_100e.py.')
    return Config.fromfile(path)


def build_runner(cfg: Config) -> Runner:
    """The default Runner, or the one named by ``runner_type``."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def _runner(args: argparse.Namespace,
            merge: Callable[[Config, argparse.Namespace], None],
            split: str) -> Runner:
    """Load the config, apply the command line and build the Runner.

    ``--launcher`` and ``--work-dir`` apply first, then ``merge`` (the
    tool's own flags), then ``--cfg-options``.
    """
    check_launcher(args.launcher)
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    # CLI > work_dir in the config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    merge(cfg, args)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # A corrupt image or label map is named, with what is wrong with it,
    # also when a dataloader worker reads it in the middle of an epoch.
    use_checked_loading(cfg)
    # A missing data root fails here, naming the key, not in a worker.
    check_data_roots(cfg, split)
    # Without a GPU: gloo process group, CPU DDP, BN for SyncBN.
    setup_cpu_distributed(cfg, args.launcher)
    return build_runner(cfg)


# ------------------------------------------------------------------ train
def _train_flags(cfg: Config, args: argparse.Namespace) -> None:
    """Apply the flags of training alone: validation, AMP, resume, lr."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        # AmpOptimWrapper asserts on a CPU-only machine; say why up front.
        if not (is_cuda_available() or is_npu_available()
                or is_mlu_available() or is_musa_available()):
            raise SystemExit(
                '--amp: automatic mixed precision needs a GPU (MMEngine\'s '
                'AmpOptimWrapper refuses CPU); no CUDA, NPU, MLU or MUSA '
                'device was found. Run without --amp on CPU.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(
                osp.expanduser(args.resume)):
            raise SystemExit(
                f'--resume {args.resume!r}: no such file. Allowed: a '
                'checkpoint this project\'s Runner wrote (work_dir/'
                'epoch_N.pth), or --resume without a path to continue from '
                'the latest checkpoint in the work directory.')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise SystemExit(
                '--auto-scale-lr: the config has no '
                '`auto_scale_lr = dict(base_batch_size=N)`, the total batch '
                'size its learning rate was set for')
        cfg.auto_scale_lr.enable = True


# ----------------------------------------------------------------- resume
#: How many keys of each kind a mismatch message lists.
_SHOWN_KEYS = 5


def resume_checkpoint_path(runner: Runner) -> Optional[str]:
    """The checkpoint that ``Runner.load_or_resume`` will resume from.

    Args:
        runner (Runner): A built Runner, before ``train()``.

    Returns:
        str | None: ``load_from`` when resuming from a given file, the work
        dir's latest checkpoint for ``--resume`` without a path, or None
        when the run does not resume (or has nothing to resume from).
    """
    if not runner.cfg.get('resume', False):
        return None
    if runner.cfg.get('load_from'):
        return runner.cfg.load_from
    return find_latest_checkpoint(runner.work_dir)


def _model_types(cfg_text: Any) -> Optional[Dict[str, str]]:
    """``model.type`` and ``model.backbone.type`` of a dumped config.

    The config text in a checkpoint's meta is Python that MMEngine would
    execute to read; it comes from the file being checked, so it is only
    parsed here (``ast``), never run.
    """
    if not isinstance(cfg_text, str):
        return None
    try:
        tree = ast.parse(cfg_text)
    except (SyntaxError, ValueError):
        return None

    def literal_keywords(call: ast.AST) -> Dict[str, Any]:
        found = {}
        for keyword in getattr(call, 'keywords', []):
            if keyword.arg in ('type', 'backbone'):
                found[keyword.arg] = keyword.value
        return found

    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], 'id', None) == 'model'):
            model = literal_keywords(node.value)
            types = {}
            for key, value in (('model', model.get('type')),
                               ('backbone', literal_keywords(
                                   model.get('backbone')).get('type'))):
                if isinstance(value, ast.Constant) and isinstance(
                        value.value, str):
                    types[key] = value.value
            return types or None
    return None


def _short_type(name: Any) -> Any:
    """A registry type without its scope (``mmpretrain.MAEViT`` ->
    ``MAEViT``), so that a scoped and a plain spelling compare equal; a
    class (a pure-Python config's type) by its name."""
    if isinstance(name, type) or callable(name):
        name = getattr(name, '__name__', name)
    return name.split('.')[-1] if isinstance(name, str) else name


def _listed(title: str, items: List[str]) -> str:
    shown = '; '.join(items[:_SHOWN_KEYS])
    more = (f' (+{len(items) - _SHOWN_KEYS} more)'
            if len(items) > _SHOWN_KEYS else '')
    return f'\n  {title} ({len(items)}): {shown}{more}'


def _group_sizes(state: Any) -> Optional[Dict[str, List[int]]]:
    """``{optimizer: [parameters per param group]}`` of an optimizer
    wrapper's state dict: the key ``''`` for one ``OptimWrapper``, one key
    per optimizer of an ``OptimWrapperDict``; None for anything else."""
    if not isinstance(state, dict):
        return None
    if 'param_groups' in state:
        groups = state['param_groups']
        if not (isinstance(groups, list) and all(
                isinstance(g, dict) and isinstance(g.get('params'), list)
                for g in groups)):
            return None
        return {'': [len(g['params']) for g in groups]}
    sizes = {}
    for name, inner in state.items():
        found = _group_sizes(inner) if isinstance(inner, dict) else None
        if found is None or list(found) != ['']:
            return None
        sizes[name] = found['']
    return sizes or None


def _groups_text(sizes: Optional[List[int]]) -> str:
    if sizes is None:
        return 'none'
    shown = ', '.join(str(n) for n in sizes[:_SHOWN_KEYS])
    more = ', ...' if len(sizes) > _SHOWN_KEYS else ''
    plural = '' if len(sizes) == 1 else 's'
    return f'{len(sizes)} param group{plural} of [{shown}{more}] parameters'


def param_group_differences(saved: Any, current: dict) -> List[str]:
    """How the optimizer param groups of a checkpoint differ from the
    config's: the number of groups, the parameters in each.

    These are what ``torch.optim.Optimizer.load_state_dict`` requires to
    be equal (it fails with ``loaded state dict has a different number of
    parameter groups``, or ``... doesn't match the size of optimizer's
    group``, after the model weights are already loaded).

    Args:
        saved: The checkpoint's ``optimizer`` entry.
        current (dict): ``state_dict()`` of the optimizer wrapper that the
            config builds for the model.

    Returns:
        list[str]: One line per difference, empty when they match.
    """
    ours = _group_sizes(current)
    theirs = _group_sizes(saved)
    if ours is None:
        return []
    if theirs is None:
        return ['optimizer: the checkpoint\'s entry is not the state of an '
                'optimizer wrapper (no param_groups with params)']
    lines = []
    for name in sorted(set(ours) | set(theirs)):
        label = f'optimizer {name!r}' if name else 'optimizer'
        if ours.get(name) != theirs.get(name):
            lines.append(f'{label}: checkpoint '
                         f'{_groups_text(theirs.get(name))}, config '
                         f'{_groups_text(ours.get(name))}')
    return lines


def check_resume_checkpoint(runner: Runner, config: str) -> None:
    """Refuse to resume from a checkpoint of another model, before loading.

    MMEngine's ``Runner.resume`` loads the weights non-strictly, so a
    checkpoint of another algorithm or architecture, or of other optimizer
    settings, is half loaded before the optimizer fails with ``loaded state
    dict has a different number of parameter groups``. Here the file is
    read with ``weights_only=True`` (a crafted pickle is refused, nothing
    it holds runs) and compared with the built model: the model type
    recorded in its meta, missing, unexpected and mis-shaped keys; and with
    the optimizer wrapper the config builds for it (built here, once, and
    then used by ``runner.train()``): the number of param groups and the
    parameters in each.

    Args:
        runner (Runner): The built Runner, before ``train()``.
        config (str): The config path, named in the message.

    Raises:
        SystemExit: The file cannot be read safely, is not a Runner
            checkpoint, or does not match the config.
    """
    path = resume_checkpoint_path(runner)
    if path is None:
        return
    allowed = ('Allowed: a checkpoint that a Runner of this config wrote '
               '(same model type, architecture and optimizer param groups: '
               'optim_wrapper\'s constructor and paramwise_cfg); to start '
               'from other weights, use a Pretrained init_cfg instead of '
               '--resume.')
    try:
        # Keys and shapes only: MMEngine reads the tensors when it resumes.
        checkpoint = load_checkpoint(path, '--resume', mmap=True)
    except ValueError as err:
        raise SystemExit(f'{err}\n{allowed}') from err
    state = (checkpoint.get('state_dict')
             if isinstance(checkpoint, dict) else None)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not (isinstance(state, dict) and isinstance(meta, dict)
            and 'epoch' in meta and 'iter' in meta):
        found = (sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else
                 type(checkpoint).__name__)
        raise SystemExit(
            f'--resume {path!r} is not a Runner checkpoint: it has no '
            f'state_dict and meta with epoch and iter (found {found}); '
            f'nothing was loaded. {allowed}')
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    # Runner.load_checkpoint drops a DDP "module." prefix the same way.
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in state.items()}
    required = model.state_dict()
    # Weights a model keeps out of its checkpoints (MomaAlgorithm's frozen
    # teachers) are not required, but may be present.
    known = dict(model.named_parameters())
    known.update(model.named_buffers())
    known.update(required)
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in known]
    mis_shaped = [
        f'{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(known[k].shape)}' for k, v in state.items()
        if k in known and isinstance(v, torch.Tensor)
        and tuple(v.shape) != tuple(known[k].shape)
    ]
    recorded = _model_types(meta.get('cfg'))
    model_cfg = runner.cfg.get('model', {})
    backbone_cfg = model_cfg.get('backbone') or {}
    current = {'model': model_cfg.get('type'),
               'backbone': backbone_cfg.get('type')}
    type_differs = recorded is not None and any(
        _short_type(recorded.get(k)) != _short_type(current[k])
        for k in recorded)
    optimizer = []
    # Runner.resume loads the optimizer only when the file holds one.
    if 'optimizer' in checkpoint and runner.optim_wrapper is not None:
        # runner.train() builds it the same way, or takes this one as built
        runner.optim_wrapper = runner.build_optim_wrapper(
            runner.optim_wrapper)
        optimizer = param_group_differences(
            checkpoint['optimizer'], runner.optim_wrapper.state_dict())
    if not (missing or unexpected or mis_shaped or type_differs
            or optimizer):
        return
    lines = [f'--resume {path!r} does not match the config {config!r}; '
             'nothing was loaded.']
    if recorded is not None:
        lines.append(f'\n  model type: checkpoint {recorded}, config '
                     f'{current}')
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('mis-shaped', mis_shaped)):
        if items:
            lines.append(_listed(title, items))
    lines.extend(f'\n  {line}' for line in optimizer)
    lines.append(f'\n{allowed}')
    raise SystemExit(''.join(lines))


def train(argv: Optional[List[str]] = None) -> None:
    """Train from a config: the command line of ``tools/train.py``.

    Args:
        argv (list[str], optional): The arguments. Defaults to None
            (``sys.argv[1:]``).
    """
    parser = _parser('Train a model', 'train config file path',
                     'the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, resume from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper); needs a GPU')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        '`auto_scale_lr.base_batch_size` of the config')
    args = _parse(parser, 'train_cfg.max_epochs=2', argv)
    runner = _runner(args, _train_flags, 'train')
    # Builds the loops that runner.train() then uses: an empty dataset, an
    # unreadable first image, or any bad file of a small dataset (the
    # scenes) fails before the model is initialised, not at validation.
    for key, loop in (('train_dataloader', runner.train_loop),
                      ('val_dataloader', runner.val_loop)):
        if loop is not None:
            check_samples(loop.dataloader.dataset, f'{key}.dataset')
    # A foreign or crafted checkpoint is refused before any state is loaded.
    check_resume_checkpoint(runner, args.config)
    runner.train()


# ------------------------------------------------------------------- test
def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the codebase's visualization hook, saving under show_dir.

    Args:
        cfg (Config): The full config; edited in place.
        show_dir (str): The ``--show-dir`` value.
    """
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit(
            '--show-dir: the config has no `default_hooks.visualization`; '
            'add the codebase\'s VisualizationHook (MMPretrain) or '
            'SegVisualizationHook (MMSegmentation)')
    if 'SegVisualizationHook' in str(hook.get('type', '')):
        # MMSegmentation draws with `draw`; files go to the visualizer.
        hook.draw = True
        cfg.visualizer.save_dir = show_dir
    else:
        hook.enable = True
        hook.out_dir = show_dir


def _test_flags(cfg: Config, args: argparse.Namespace) -> None:
    """Apply the checkpoint and ``--show-dir``."""
    if '://' not in args.checkpoint and not osp.isfile(
            osp.expanduser(args.checkpoint)):
        # MMEngine would find out only after building the whole Runner.
        raise SystemExit(
            f'checkpoint {args.checkpoint!r}: no such file. Allowed: a '
            'checkpoint file (work_dir/epoch_N.pth) or a URL.')
    cfg.load_from = args.checkpoint
    if args.show_dir is not None:
        enable_visualization(cfg, args.show_dir)


def test(argv: Optional[List[str]] = None) -> dict:
    """Test (and evaluate) a checkpoint: the command line of ``tools/test.py``.

    Args:
        argv (list[str], optional): The arguments. Defaults to None
            (``sys.argv[1:]``).

    Returns:
        dict: The metrics of ``Runner.test``.
    """
    parser = _parser('Test (and eval) a model', 'test config file path',
                     'the dir to save the evaluation metrics and logs')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='dump the predictions to this pickle file (.pkl or .pickle)')
    parser.add_argument(
        '--show-dir',
        help='save visualized predictions under this directory')
    args = _parse(parser, 'test_dataloader.batch_size=1', argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out {args.out}: the file must end in .pkl or '
                     '.pickle')
    runner = _runner(args, _test_flags, 'test')
    check_samples(runner.test_loop.dataloader.dataset,
                  'test_dataloader.dataset')
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    return runner.test()
