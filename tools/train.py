"""Train a model from an MMPretrain or MMSegmentation config.

A thin wrapper around MMEngine's Runner with MMPretrain's command line. The
config's ``default_scope`` decides which codebase builds it; mmmoma reaches
it through ``custom_imports``. Examples::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
    bash tools/dist_train.sh CONFIG 8 [ARGS]     # one process per GPU
    bash tools/dist_train.sh CONFIG 2 [ARGS]     # CPU only: 2 gloo processes
"""
import argparse
import importlib
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def import_mmmoma():
    """Import mmmoma before anything else imports mmpretrain or mmseg.

    ``import mmmoma`` applies ``mmmoma.compat``. A checkout that is not
    installed is put on ``sys.path`` and ``PYTHONPATH`` so that the config's
    ``custom_imports`` and any worker process find the same package.
    """
    try:
        return importlib.import_module('mmmoma')
    except ModuleNotFoundError as err:
        if err.name != 'mmmoma' or not osp.isfile(
                osp.join(REPO_ROOT, 'mmmoma', '__init__.py')):
            raise
    sys.path.insert(0, REPO_ROOT)
    os.environ['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p)
    return importlib.import_module('mmmoma')


mmmoma = import_mmmoma()

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.device import (is_cuda_available, is_mlu_available,  # noqa: E402
                             is_musa_available, is_npu_available)
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmmoma.compat import setup_cpu_distributed  # noqa: E402
from mmmoma.datasets.checks import (check_data_roots,  # noqa: E402
                                    check_samples)

# What each --launcher reads from the environment (MMEngine's init_dist).
LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
            'OMPI_COMM_WORLD_SIZE'),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
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
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy pairs merged into the '
        'config, e.g. train_cfg.max_epochs=2 key="[a,b]"')
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


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config (``--cfg-options`` last)."""
    cfg.launcher = args.launcher

    # CLI > work_dir in the config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def check_launcher(launcher: str) -> None:
    """Fail when the environment lacks what ``launcher`` reads."""
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


def main(argv=None) -> None:
    args = parse_args(argv)
    check_launcher(args.launcher)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    # A missing data root fails here, naming the key, not in a worker.
    check_data_roots(cfg, 'train')
    # Without a GPU: gloo process group, CPU DDP, BN for SyncBN.
    setup_cpu_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    # Builds the train loop that runner.train() then uses: an empty dataset
    # or an unreadable first image fails before the model is initialised.
    if runner.train_loop is not None:
        check_samples(runner.train_loop.dataloader.dataset,
                      'train_dataloader.dataset')
    runner.train()


if __name__ == '__main__':
    main()
