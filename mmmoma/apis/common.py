"""What the demo and the study share: time format, progress lines, child
tool runs, result caches, command-line pieces and config hashes."""
import argparse
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

from mmmoma.fileio import atomic_write

#: The checkout's root: configs/ and tools/ are found from here.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# MMEngine's Config.fromfile goes through temporary files and imports: runs
# in threads parse their configs one at a time.
CONFIG_LOCK = threading.Lock()


def fmt_time(seconds: Optional[float], hours: bool = True) -> str:
    """A duration as ``'12m05s'``, ``'1h15m'`` from an hour on.

    Args:
        seconds (float, optional): The duration; None gives ``'-'``.
        hours (bool): Write an hour or more as ``'1h15m'``; False keeps
            minutes (``'75m00s'``). Defaults to True.

    Returns:
        str: The duration, rounded to the second.
    """
    if seconds is None:
        return '-'
    seconds = int(round(seconds))
    if hours and seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


class Progress:
    """Thread-safe progress lines with the elapsed time and an ETA.

    The ETA is the sum of the seconds left of every planned item, divided by
    the items that run at once; an item starts at its estimate, may be
    updated while it runs and is 0 once finished.

    Args:
        name (str): The tool, at the start of every line (``'demo'``).
        estimate (dict[str, float], optional): Seconds of each planned item.
            Defaults to None: none planned yet (see :meth:`plan`).
        log_path (str, optional): Also append every line to this file.
            Defaults to None.
        hours (bool): See :func:`fmt_time`. Defaults to True.
    """

    def __init__(self,
                 name: str,
                 estimate: Optional[Dict[str, float]] = None,
                 log_path: Optional[str] = None,
                 hours: bool = True) -> None:
        self.name = name
        self.start = time.time()
        self.left: Dict[str, float] = dict(estimate or {})
        self.jobs = 1
        self.hours = hours
        self.lock = threading.Lock()
        self.log_file = open(log_path, 'a') if log_path else None

    def plan(self, key: str, seconds: float) -> None:
        """Add (or re-estimate) the item ``key``."""
        self.left[key] = seconds

    def finish(self, key: str) -> None:
        """Mark the item ``key`` as done."""
        self.left[key] = 0.0

    def eta(self) -> float:
        """Seconds left in all, by the current estimates."""
        return sum(self.left.values()) / max(self.jobs, 1)

    def log(self,
            message: str,
            key: Optional[str] = None,
            key_left: Optional[float] = None) -> None:
        """Print ``message`` with the elapsed time and the ETA.

        Args:
            message (str): The line.
            key (str, optional): The item the line is about. Defaults to None.
            key_left (float, optional): Seconds left of ``key``, measured.
                Defaults to None: its estimate stays.
        """
        with self.lock:
            if key is not None and key_left is not None:
                self.left[key] = key_left
            elapsed = time.time() - self.start
            line = (f'[{self.name} {fmt_time(elapsed, self.hours)} | ETA '
                    f'{fmt_time(self.eta(), self.hours)}] {message}')
            print(line, flush=True)
            if self.log_file is not None:
                self.log_file.write(line + '\n')
                self.log_file.flush()

    def close(self) -> None:
        """Close the log file, if any."""
        if self.log_file is not None:
            self.log_file.close()


def tool_env() -> Dict[str, str]:
    """The environment of a child ``tools/*.py`` process.

    The checkout on ``PYTHONPATH`` (so that an uninstalled one works),
    unbuffered output (lines arrive as they are printed) and warnings off
    unless the user set ``PYTHONWARNINGS``.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get('PYTHONPATH')) if p)
    env.setdefault('PYTHONWARNINGS', 'ignore')
    env['PYTHONUNBUFFERED'] = '1'
    return env


# The child tools running now (run_tool), for stop_children_on_sigterm.
# Reentrant: the SIGTERM handler runs in the main thread, which may hold
# the lock at that moment (run_tool adding or removing its child).
_CHILDREN: set = set()
_CHILDREN_LOCK = threading.RLock()


def stop_children_on_sigterm() -> None:
    """Make SIGTERM to this process stop its child tools too, then exit
    with 143 (``tools/demo.py`` and ``tools/study.py`` call it).

    By default SIGTERM ends the parent at once and leaves each child
    ``tools/train.py`` running on, unseen, for as long as its schedule
    lasts. Here each child gets SIGTERM in turn (one with a
    PreemptionHook finishes its iteration and checkpoints; others stop at
    once, as on Ctrl-C) and the parent raises ``SystemExit``: a child in
    the main thread is waited for (:func:`run_tool`), those of worker
    threads end their threads.
    """

    def handler(signum: int, frame: Any) -> None:
        with _CHILDREN_LOCK:
            children = list(_CHILDREN)
        for child in children:
            child.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run_tool(cmd: List[str],
             log_path: str,
             what: str,
             on_line: Optional[Callable[[str], None]] = None) -> None:
    """Run a child tool; its command and output go to ``log_path``.

    Args:
        cmd (list[str]): The command.
        log_path (str): The log file (overwritten), command first.
        what (str): What runs, for the error message.
        on_line (Callable, optional): Called with every output line as it
            comes, for progress display. Defaults to None.

    Raises:
        SystemExit: The tool failed; the message holds the end of its log.
    """
    with open(log_path, 'w') as log:
        log.write(' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=tool_env())
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            for line in proc.stdout:
                log.write(line)
                if on_line is not None:
                    on_line(line)
            code = proc.wait()
        except BaseException:
            # stopped (Ctrl-C, SIGTERM): the child stops as well, given
            # time for a PreemptionHook's checkpoint
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
    if code != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        raise SystemExit(f'{what} failed with exit code {code}; the last '
                         f'lines of {log_path}:\n{tail}')


def read_cache(path: str, key: Any, force: bool = False) -> Optional[Any]:
    """The results cached in ``path`` if they were made from ``key``.

    Args:
        path (str): A JSON file written by :func:`write_cache`.
        key: The inputs the results depend on (JSON values).
        force (bool): Ignore the cache. Defaults to False.

    Returns:
        The cached results, or None (no file, other inputs, or ``force``).
    """
    if force or not osp.isfile(path):
        return None
    cached = read_json(path)
    return cached['results'] if cached.get('key') == key else None


def write_cache(path: str, key: Any, results: Any) -> None:
    """Save ``results`` and the ``key`` of their inputs to ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_json(path, dict(key=key, results=results))


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    with atomic_write(path, 'w') as f:
        json.dump(data, f, indent=1)


def read_json(path: str) -> Any:
    """The value in a JSON file.

    Raises:
        ValueError: Naming the file, when it is not complete UTF-8 JSON.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f'{path}: not a complete JSON file ({type(err).__name__}: '
            f'{err}). Allowed: the JSON this project wrote there; delete '
            'the file to have it written again.') from err


def load_config(path: str):
    """``mmengine.Config.fromfile(path)``, one thread at a time."""
    from mmengine.config import Config
    with CONFIG_LOCK:
        return Config.fromfile(path)


def config_hash(config) -> str:
    """Hash of a resolved config (its bases included): a file's path, or
    the ``mmengine.Config`` already loaded from it."""
    cfg = load_config(config) if isinstance(config, str) else config
    text = cfg.pretty_text
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def add_run_args(parser: argparse.ArgumentParser, presets: Dict[str, dict],
                 preset_help: str) -> None:
    """Add ``--preset``, ``--smoke``, ``--force`` and ``--data-root``.

    Args:
        parser (ArgumentParser): The tool's parser.
        presets (dict): The tool's presets; ``'cpu'`` is the default.
        preset_help (str): What each preset is.
    """
    parser.add_argument(
        '--preset', choices=sorted(presets), default='cpu', help=preset_help)
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


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    """Apply ``--smoke`` (``--preset smoke``); return ``args``."""
    if args.smoke:
        args.preset = 'smoke'
    return args


def command_line(tool: str, argv: Optional[List[str]]) -> str:
    """``'python tools/<tool>.py'`` and the arguments, as the user typed."""
    return f'python tools/{tool}.py' + ''.join(
        f' {a}' for a in (argv if argv is not None else sys.argv[1:]))


def prepare(data_root: Optional[str], work_dir: str) -> str:
    """Set up a chain run: registries, data check, quiet MMEngine.

    Fails now, with the install hint, when Fashion-MNIST is missing rather
    than inside the first training run.

    Args:
        data_root (str, optional): ``--data-root``.
        work_dir (str): ``--work-dir``; created.

    Returns:
        str: The absolute work dir.
    """
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from mmengine.logging import MMLogger

    from mmmoma.datasets import FashionMNISTIdx
    work = osp.abspath(work_dir)
    if osp.exists(work) and not osp.isdir(work):
        raise SystemExit(f'--work-dir={work_dir!r} is a file. Allowed: a '
                         'folder, new or holding an earlier run of this '
                         'tool.')
    try:
        FashionMNISTIdx(
            **({'data_root': data_root} if data_root else {}),
            split='test',
            num_samples=1)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'--data-root={data_root!r}: {err}') from err
    MMLogger.get_instance('mmengine', log_level='WARNING')
    os.makedirs(work, exist_ok=True)
    return work
