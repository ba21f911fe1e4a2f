"""mmmoma.apis.common: what the demo and the study share."""
import argparse
import json
import os
import sys

import pytest

from mmmoma.apis import common


def test_fmt_time():
    assert common.fmt_time(None) == '-'
    assert common.fmt_time(0) == '0m00s'
    assert common.fmt_time(65.4) == '1m05s'
    assert common.fmt_time(59.6) == '1m00s'
    assert common.fmt_time(3599) == '59m59s'
    assert common.fmt_time(3600) == '1h00m'
    assert common.fmt_time(4500) == '1h15m'
    # the demo keeps minutes past the hour
    assert common.fmt_time(4500, hours=False) == '75m00s'


def test_cache_is_keyed_by_its_inputs(tmp_path):
    path = str(tmp_path / 'eval' / 'run.json')  # the folder is made
    key = dict(checkpoint='a.pth', mtime=1.5, protocol=dict(k=20))
    assert common.read_cache(path, key) is None
    common.write_cache(path, key, dict(top1=61.88))
    assert common.read_cache(path, key) == dict(top1=61.88)
    assert common.read_cache(path, dict(key, mtime=2.0)) is None
    assert common.read_cache(path, key, force=True) is None
    assert json.loads(open(path).read()) == dict(
        key=key, results=dict(top1=61.88))
    assert [p.name for p in (tmp_path / 'eval').iterdir()] == ['run.json']


def test_progress_eta_and_log_file(tmp_path, capsys, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(common.time, 'time', lambda: clock[0])
    log = tmp_path / 'log.txt'
    progress = common.Progress('study', dict(a=60, b=120), str(log))
    clock[0] += 5
    progress.log('start')
    progress.log('a running', 'a', 30)  # measured: 30 s left of a
    progress.finish('b')
    progress.plan('c', 90)
    progress.jobs = 2
    progress.log('two at once')
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        '[study 0m05s | ETA 3m00s] start',
        '[study 0m05s | ETA 2m30s] a running',
        '[study 0m05s | ETA 1m00s] two at once',
    ]
    assert log.read_text().splitlines() == lines
    demo = common.Progress('demo', dict(a=4500), hours=False)
    demo.log('x')
    assert '| ETA 75m00s] x' in capsys.readouterr().out


def test_tool_env_puts_the_checkout_first(monkeypatch):
    monkeypatch.setenv('PYTHONPATH', '/elsewhere')
    monkeypatch.delenv('PYTHONWARNINGS', raising=False)
    env = common.tool_env()
    assert env['PYTHONPATH'].split(os.pathsep) == [
        common.REPO_ROOT, '/elsewhere'
    ]
    assert os.path.isfile(os.path.join(common.REPO_ROOT, 'tools', 'train.py'))
    assert env['PYTHONUNBUFFERED'] == '1'
    assert env['PYTHONWARNINGS'] == 'ignore'
    monkeypatch.setenv('PYTHONWARNINGS', 'error')
    assert common.tool_env()['PYTHONWARNINGS'] == 'error'


def test_run_tool_logs_and_fails_with_the_tail(tmp_path):
    log = tmp_path / 'run.log'
    seen = []
    common.run_tool([sys.executable, '-c', 'print("one"); print("two")'],
                    str(log), 'a tool', on_line=seen.append)
    assert seen == ['one\n', 'two\n']
    text = log.read_text().splitlines()
    assert text[0].startswith(sys.executable) and text[1:] == ['one', 'two']
    with pytest.raises(SystemExit, match=r'a tool failed with exit code 3;'
                       r'[\s\S]*last words'):
        common.run_tool(
            [sys.executable, '-c', 'print("last words"); exit(3)'], str(log),
            'a tool')


def test_run_args():
    parser = argparse.ArgumentParser()
    common.add_run_args(parser, dict(cpu={}, smoke={}, gpu={}), 'presets')
    args = common.resolve_preset(parser.parse_args([]))
    assert (args.preset, args.force, args.data_root) == ('cpu', False, None)
    args = common.resolve_preset(
        parser.parse_args(['--smoke', '--force', '--data-root', 'd']))
    assert (args.preset, args.force, args.data_root) == ('smoke', True, 'd')
    with pytest.raises(SystemExit):
        parser.parse_args(['--preset', 'tpu'])
    assert common.command_line('demo', ['--smoke']) == (
        'python tools/demo.py --smoke')


def test_config_hash_follows_the_resolved_config(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text('a = 1\n')
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = {str(base)!r}\nb = 2\n')
    first = common.config_hash(str(child))
    assert len(first) == 16 and first == common.config_hash(str(child))
    base.write_text('a = 3\n')  # an edited base changes the hash
    assert common.config_hash(str(child)) != first
    # a loaded config hashes as its file does (no second load)
    assert common.config_hash(common.load_config(str(child))) == \
        common.config_hash(str(child))


_CHILD = '''
import os, signal, sys, time
name = sys.argv[1]
def stop(signum, frame):  # as PreemptionHook: checkpoint, then exit 75
    open(name + '.stopped', 'w').close()
    sys.exit(75)
signal.signal(signal.SIGTERM, stop)
with open(name + '.pid', 'w') as f:
    f.write(str(os.getpid()))
print('started', flush=True)
time.sleep(600)
'''

_PARENT = '''
import sys
from concurrent.futures import ThreadPoolExecutor
from mmmoma.apis import common
common.stop_children_on_sigterm()
child, folder, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(i):
    name = f'{folder}/child{i}'
    common.run_tool([sys.executable, child, name], name + '.log', 'child')
if threads:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
else:
    run(0)
'''


@pytest.mark.parametrize('threads', [0, 2])
def test_sigterm_stops_the_child_tools_too(tmp_path, threads):
    """SIGTERM to tools/demo.py or tools/study.py reaches their running
    tools/train.py children (killing a parent used to leave them training
    on, unseen), whether a child runs in the main thread or in a worker."""
    import signal
    import subprocess
    import time
    child, parent = tmp_path / 'child.py', tmp_path / 'parent.py'
    child.write_text(_CHILD)
    parent.write_text(_PARENT)
    proc = subprocess.Popen(
        [sys.executable, str(parent), str(child), str(tmp_path),
         str(threads)], env=common.tool_env())
    names = [tmp_path / f'child{i}' for i in range(max(threads, 1))]
    deadline = time.time() + 120
    # a child writes its pid once its SIGTERM handler is in place
    while not all(n.with_suffix('.pid').is_file() for n in names):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    for name in names:
        assert name.with_suffix('.stopped').is_file()  # handled SIGTERM
        pid = int(name.with_suffix('.pid').read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
