"""Training curves of a run from MMEngine's ``scalars.json``: each teacher's
loss, the learning rate and the k-NN monitor against iterations and epochs
(``tools/analysis_tools/plot_curves.py``).

MMPretrain's ``tools/analysis_tools/analyze_logs.py plot_curve`` reads the
same file, but draws every key on one axis, training keys against epochs
and the monitor against iterations; here each kind of value has its own
panel and all share one iteration axis.
"""
import argparse
import glob
import json
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence


class Curve(NamedTuple):
    """One logged value: the iterations and the values logged there."""
    steps: List[int]
    values: List[float]


def find_scalars(path: str) -> List[str]:
    """The ``scalars.json`` files of a run, oldest first.

    Args:
        path (str): A ``scalars.json`` file, or a work dir; MMEngine writes
            ``<work_dir>/<timestamp>/vis_data/scalars.json``, one per
            session, so a resumed run has several.

    Returns:
        list[str]: The files.
    """
    if osp.isfile(path):
        return [path]
    found = sorted(
        glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise FileNotFoundError(
            f'plot_curves: path={path!r} is neither a scalars.json file nor '
            'a work dir holding <timestamp>/vis_data/scalars.json.')
    return found


def read_scalars(paths: Sequence[str]) -> Dict[str, Curve]:
    """Every numeric value of ``scalars.json`` files, as curves by key.

    A resumed session logs again the iterations after its checkpoint: a
    later file's value replaces an earlier one at the same iteration.

    Args:
        paths (Sequence[str]): The files, oldest first.

    Returns:
        dict[str, Curve]: By key (``'loss_mae'``, ``'lr'``,
        ``'knn/top1'``, ...), sorted by iteration; ``'epoch'`` holds the
        epoch of each training line.
    """
    points: Dict[str, Dict[int, float]] = {}
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    step = int(entry['step'])
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(
                        f'plot_curves: line {number} of {path} is not an '
                        f'MMEngine scalar line with a "step" ({err!r}): '
                        f'{line.strip()[:120]!r}') from err
                for key, value in entry.items():
                    if key in ('step', 'iter') or isinstance(value, bool):
                        continue
                    if isinstance(value, (int, float)):
                        points.setdefault(key, {})[step] = float(value)
    return {
        key: Curve(sorted(values), [values[s] for s in sorted(values)])
        for key, values in points.items()
    }


def iters_per_epoch(curves: Dict[str, Curve]) -> Optional[int]:
    """Iterations per epoch of an epoch-based run, or None if unknown.

    MMEngine's logger counts its interval within each epoch, so the first
    training line of every epoch sits at the same offset: the distance
    between those of consecutive epochs is the epoch length.
    """
    epoch = curves.get('epoch')
    if epoch is None:
        return None
    first: Dict[int, int] = {}
    for step, value in zip(epoch.steps, epoch.values):
        first.setdefault(int(value), step)
    epochs = sorted(first)
    gaps = {(first[b] - first[a]) / (b - a)
            for a, b in zip(epochs, epochs[1:])}
    if len(gaps) != 1:
        return None
    gap = gaps.pop()
    return int(gap) if gap > 0 and gap == int(gap) else None


def default_keys(curves: Dict[str, Curve]) -> List[str]:
    """The losses (total and per teacher), ``lr`` and the ``*/top1``
    monitors that the run logged."""
    losses = sorted(k for k in curves if k.startswith('loss'))
    monitors = sorted(k for k in curves if k.endswith('/top1'))
    return losses + (['lr'] if 'lr' in curves else []) + monitors


def plot_curves(path: str,
                out: str,
                keys: Optional[Sequence[str]] = None,
                title: Optional[str] = None) -> Dict[str, Curve]:
    """Plot a run's curves to a PNG: one panel for the losses, one for each
    other key, against iterations, with epochs on the top axis when known.

    Args:
        path (str): A ``scalars.json`` file or a run's work dir.
        out (str): The PNG to write.
        keys (Sequence[str], optional): The keys to plot. Defaults to None:
            :func:`default_keys`.
        title (str, optional): Figure title. Defaults to None: ``path``.

    Returns:
        dict[str, Curve]: The plotted curves, by key.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmmoma.fileio import atomic_write

    curves = read_scalars(find_scalars(path))
    keys = list(keys) if keys is not None else default_keys(curves)
    missing = [k for k in keys if k not in curves]
    if missing or not keys:
        raise ValueError(
            f'plot_curves: keys={missing or keys!r} not logged in {path}; '
            f'allowed: {sorted(k for k in curves if k != "epoch")}.')
    panels: Dict[str, List[str]] = {}
    for key in keys:  # all losses share a panel: they compare
        panels.setdefault('loss' if key.startswith('loss') else key,
                          []).append(key)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, 2.3 * len(panels) + 0.6), sharex=True,
        squeeze=False)
    for ax, (panel, names) in zip(axes[:, 0], panels.items()):
        for name in names:
            curve = curves[name]
            # a monitor has a few points: mark them
            style = '-o' if len(curve.steps) < 30 else '-'
            ax.plot(curve.steps, curve.values, style, label=name,
                    markersize=3, linewidth=1)
        values = [v for n in names for v in curves[n].values]
        if panel == 'loss' and min(values) > 0:
            ax.set_yscale('log')  # losses fall by orders of magnitude
        ax.set_ylabel(panel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel('iteration')
    per_epoch = iters_per_epoch(curves)
    if per_epoch:
        top = axes[0, 0].secondary_xaxis(
            'top', functions=(lambda x: x / per_epoch,
                              lambda e: e * per_epoch))
        top.set_xlabel(f'epoch ({per_epoch} iterations)', fontsize=8)
    fig.suptitle(title or path, fontsize=9)
    fig.tight_layout()
    with atomic_write(out, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)
    return {k: curves[k] for k in keys}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``tools/analysis_tools/plot_curves.py``."""
    parser = argparse.ArgumentParser(
        description='Plot a training run\'s losses (each teacher\'s), '
        'learning rate and k-NN monitor from MMEngine\'s scalars.json.')
    parser.add_argument(
        'path', help='a work dir or a <timestamp>/vis_data/scalars.json')
    parser.add_argument(
        '--out',
        default=None,
        help='the PNG (default: curves.png in the work dir, or next to '
        'scalars.json)')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=None,
        help='keys to plot (default: loss*, lr, */top1)')
    parser.add_argument('--title', default=None, help='figure title')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Curve]:
    """Plot and print where the PNG went."""
    args = parse_args(argv)
    out = args.out
    if out is None:
        folder = args.path if osp.isdir(args.path) else osp.dirname(
            osp.abspath(args.path))
        out = osp.join(folder, 'curves.png')
    curves = plot_curves(args.path, out, args.keys, args.title)
    summary = ', '.join(f'{k} ({len(c.steps)} points)'
                        for k, c in curves.items())
    print(f'plot_curves: {summary} -> {out}')
    return curves
