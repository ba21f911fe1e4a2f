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
import os
import os.path as osp
from typing import Any, Callable, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmmoma.datasets.checks import check_data_roots, check_samples

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
    cfg = Config.fromfile(args.config)
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
    # Builds the train loop that runner.train() then uses: an empty dataset
    # or an unreadable first image fails before the model is initialised.
    if runner.train_loop is not None:
        check_samples(runner.train_loop.dataloader.dataset,
                      'train_dataloader.dataset')
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
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    return runner.test()
