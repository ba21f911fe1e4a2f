"""A preempted job exits with code 75 from its launcher too.

torchrun reports any failed worker, and its own death by a signal, as exit
code 1; ``tools/dist_train.sh`` runs it through
:func:`mmmoma.engine.preemption.torchrun`, which exits with the code the
workers wrote to the marker file. ``tools/slurm_train.sh`` reads the same
marker after ``srun``.
"""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mmmoma.engine.preemption import (EXIT_PREEMPTED, MARKER_ENV,
                                      read_marker, write_marker)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'
PLUGINS = ROOT / 'tests/data/plugins'
WRAPPER = ('import sys; from mmmoma.engine.preemption import torchrun; '
           'sys.exit(torchrun())')
# A torchrun worker: the first process of the node writes the marker as
# PreemptionHook does (MARKER_ENV: "<code> <checkpoint>"), every one exits
# with the code.
WORKER = '''import os, sys
marker = os.environ.get({env!r})
if {write} and marker and os.environ['LOCAL_RANK'] == '0':
    with open(marker, 'w') as f:
        f.write('75 /work/preempted_iter_3.pth\\n')
sys.exit({code})
'''


def run(cmd, env=None, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd],
                          env={**os.environ, **(env or {})},
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=timeout,
                          **kwargs)


def test_marker_round_trip(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    marker.write_text('')
    assert read_marker(str(marker)) is None  # written by the launcher
    monkeypatch.setenv(MARKER_ENV, str(marker))
    monkeypatch.setenv('LOCAL_RANK', '1')
    write_marker(75, '/w/preempted_iter_3.pth')
    assert read_marker(str(marker)) is None  # not the node's first process
    monkeypatch.setenv('LOCAL_RANK', '0')
    write_marker(75, '/w/preempted_iter_3.pth')
    assert marker.read_text() == '75 /w/preempted_iter_3.pth\n'
    assert read_marker(str(marker)) == EXIT_PREEMPTED
    marker.write_text('0 /w/x.pth\n')
    assert read_marker(str(marker)) is None
    assert read_marker(str(tmp_path / 'missing')) is None


@pytest.mark.parametrize('launcher,write,code,status', [
    ('mmmoma', True, 75, 75),
    ('mmmoma', False, 75, 1),  # no marker: a failure, reported as such
    ('mmmoma', True, 0, 0),
    ('torchrun', True, 75, 1),  # the control: what torchrun alone reports
], ids=['preempted', 'failed', 'done', 'plain-torchrun'])
def test_torchrun_exit_code(tmp_path, free_port, launcher, write, code,
                            status):
    worker = tmp_path / 'worker.py'
    worker.write_text(WORKER.format(env=MARKER_ENV, write=write, code=code))
    prefix = (['-c', WRAPPER] if launcher == 'mmmoma' else
              ['-m', 'torch.distributed.run'])
    (tmp_path / 'tmp').mkdir()
    proc = run([
        sys.executable, *prefix, '--nproc_per_node=2',
        f'--master_port={free_port}', worker
    ], env={'PYTHONPATH': str(ROOT), 'TMPDIR': str(tmp_path / 'tmp'),
            'OMP_NUM_THREADS': '1'})
    assert proc.returncode == status, proc.stdout[-3000:]
    if status == 75:
        assert ('torchrun: the workers were preempted and saved '
                '/work/preempted_iter_3.pth; exiting with code 75 (not '
                "torchrun's 1)") in proc.stdout
    # the marker file of the wrapper is gone
    assert not list((tmp_path / 'tmp').glob('mmmoma-preempted-*'))


def test_dist_train_sh_exits_75_when_preempted(tiny_moma_run, tmp_path,
                                               free_port):
    """2 gloo processes; the scheduler's SIGTERM reaches the whole process
    group (torchrun and both ranks) during iteration 2."""
    config = tmp_path / 'preempted.py'
    config.write_text(
        f'_base_ = {str(CONFIG)!r}\n'
        "custom_imports = dict(imports=['mmmoma', 'reliability_hooks'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='EpochSeedHook'), "
        "dict(type='PreemptionHook'), "
        "dict(type='SignalAtIterHook', iteration=2)]\n")
    work = tmp_path / 'work'
    (tmp_path / 'tmp').mkdir()
    proc = run([
        'bash', ROOT / 'tools/dist_train.sh', config, 2, '--work-dir', work,
        '--cfg-options', *tiny_moma_run['options'], 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=2'
    ], env={'PYTHONPATH': os.pathsep.join([str(PLUGINS), str(ROOT)]),
            'PYTHON': sys.executable, 'PORT': str(free_port),
            'OMP_NUM_THREADS': '1', 'TMPDIR': str(tmp_path / 'tmp')},
               start_new_session=True)  # the signal goes to this group
    assert proc.returncode == EXIT_PREEMPTED, proc.stdout[-3000:]
    saved = work / 'preempted_iter_2.pth'
    assert saved.is_file()
    assert (work / 'last_checkpoint').read_text() == str(saved)
    assert (f'torchrun: the workers were preempted and saved {saved}; '
            'exiting with code 75') in proc.stdout
    assert not list((tmp_path / 'tmp').glob('mmmoma-preempted-*'))


# ------------------------------------------------------------ slurm_train
FAKE_SRUN = '''#!/usr/bin/env bash
# srun as seen by tools/slurm_train.sh: FAKE_SRUN says how its tasks end.
echo "srun marker: $MMMOMA_PREEMPTED_FILE"
case "$FAKE_SRUN" in
    preempted)  # the tasks wrote the marker; srun reports 137 because
        # --kill-on-bad-exit killed a task that had not exited yet
        echo "75 $FAKE_WORK/preempted_iter_3.pth" > "$MMMOMA_PREEMPTED_FILE"
        exit 137 ;;
    failed) exit 1 ;;
    done) exit 0 ;;
esac
'''


@pytest.mark.parametrize('how,status', [('preempted', 75), ('failed', 1),
                                        ('done', 0)])
def test_slurm_train_sh_exit_code(tmp_path, how, status):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / 'work'
    proc = run(['bash', ROOT / 'tools/slurm_train.sh', 'part', 'job', CONFIG,
                work],
               env={'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                    'FAKE_SRUN': how, 'FAKE_WORK': str(work)},
               timeout=60)
    assert proc.returncode == status, proc.stdout
    marker = proc.stdout.split('srun marker: ')[1].split('\n')[0]
    assert Path(marker).parent == work  # on the shared file system
    assert not Path(marker).exists()  # removed at the end
    preempted = 'preempted; the checkpoint is ' in proc.stdout
    assert preempted == (how == 'preempted')
    if preempted:
        assert (f'the checkpoint is {work}/preempted_iter_3.pth. Exiting '
                'with 75: requeue and continue with --resume.') in proc.stdout
