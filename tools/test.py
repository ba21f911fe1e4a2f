"""Test (and evaluate) a checkpoint with an MMPretrain or MMSeg config.

A thin wrapper around MMEngine's Runner with MMPretrain's command line. The
config's ``default_scope`` decides which codebase builds it. Examples::

    python tools/test.py CONFIG CHECKPOINT [--out results.pkl]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8 [ARGS]
"""
import argparse
import importlib
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def import_mmmoma():
    """Import mmmoma (and so ``mmmoma.compat``) before mmpretrain or mmseg.

    A checkout that is not installed is put on ``sys.path`` and
    ``PYTHONPATH`` so that the config's ``custom_imports`` find it.
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
from mmengine.evaluator import DumpResults  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmmoma.compat import setup_cpu_distributed  # noqa: E402
from mmmoma.datasets.checks import check_data_roots  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics and logs')
    parser.add_argument(
        '--out',
        help='dump the predictions to this pickle file (.pkl or .pickle)')
    parser.add_argument(
        '--show-dir',
        help='save visualized predictions under this directory')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, xxx=yyy pairs merged into the '
        'config, e.g. test_dataloader.batch_size=1 key="[a,b]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out {args.out}: the file must end in .pkl or '
                     '.pickle')
    return args


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the codebase's visualization hook, saving under show_dir."""
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


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config (``--cfg-options`` last)."""
    cfg.launcher = args.launcher
    # CLI > work_dir in the config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir is not None:
        enable_visualization(cfg, args.show_dir)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """The default Runner, or the one named by ``runner_type``."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    check_data_roots(cfg, 'test')
    setup_cpu_distributed(cfg, args.launcher)
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
