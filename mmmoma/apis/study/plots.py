"""The study's plots: k-NN during training, accuracy by mask ratio, the
recipe rows against their baselines."""
import os.path as osp
from typing import List

from .rows import recipe_pairs


def plot(rows: List[dict], work: str, info: dict) -> List[str]:
    """knn_vs_epochs.png, acc_vs_mask_ratio.png, recipe.png,
    mask_ratio_vs_grid.png and knn_vs_flops.png (each when its rows are
    there)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_id = {r['id']: r for r in rows}
    preset = info['settings']
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        # the plateau check's longer run shows where the students go next
        if (row['group'] not in ('teacher', 'main', 'plateau')
                or not row['knn_curve']):
            continue
        xs, ys = zip(*row['knn_curve'])
        style = {'teacher': '-o', 'main': '--s'}.get(row['group'], ':^')
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

    wanted = ['moco-mae'] + [f'mask-{r:g}' for r in (0.5, 0.75, 0.95)]
    if all(i in by_id for i in wanted):  # else a --rows selection
        paths.append(_mask_ratio(plt, by_id, work))
    if any(r['group'] == 'recipe' for r in rows):
        paths.append(_recipe(plt, rows, work))
    if any(r['group'] == 'grid' for r in rows):
        paths.append(_grid(plt, rows, by_id, work))
    if any(r.get('flops_curve') and r['knn_curve'] for r in rows):
        paths.append(_flops(plt, rows, preset, work))
    return paths


def _flops(plt, rows: List[dict], preset: dict, work: str) -> str:
    """k-NN (the monitor) against cumulative training FLOPs: the teachers,
    the main rows and the equal-compute rows (protocol v2)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if (row['group'] not in ('teacher', 'main', 'flops', 'plateau')
                or not row.get('flops_curve') or not row['knn_curve']):
            continue
        curve = row['flops_curve']
        points = [(curve[e], v) for e, v in row['knn_curve']
                  if e < len(curve)]
        xs, ys = zip(*points)
        style = {'teacher': '-o', 'main': '--s'}.get(row['group'], ':^')
        ax.plot(xs, ys, style, label=row['label'], markersize=4)
    # linear below 1e12, so that the initialisations (0 FLOPs) show; ticks
    # at 0 and the decades above it only (a 1e11 tick would overlap 0)
    ax.set_xscale('symlog', linthresh=1e12)
    decades = [10.0**k for k in range(12, 17) if 10.0**k <= ax.get_xlim()[1]]
    if decades:  # a smoke run's FLOPs stay under 1e12: default ticks
        ax.set_xticks([0.0] + decades)
    ax.set_xlabel('cumulative training FLOPs (counted; teachers\' forward '
                  'included)')
    ax.set_ylabel('k-NN top-1 (%), monitor')
    ax.set_title(f'k-NN against training compute ({preset["hook_train"]:,} '
                 f'bank / {preset["hook_test"]:,} test images)', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = osp.join(work, 'knn_vs_flops.png')
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _grid(plt, rows: List[dict], by_id: dict, work: str) -> str:
    """k-NN and linear against the mask ratio, one line per patch grid."""
    lines = {7: [(0.9, by_id.get('moco-mae')), (0.75, by_id.get(
        'mask-0.75')), (0.5, by_id.get('mask-0.5'))]}
    for row in rows:
        if row['group'] == 'grid':
            side = 28 // row['patch_size']
            lines.setdefault(side, []).append((row['mask_ratio'], row))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (metric, name) in zip(axes, (('knn_top1', 'k-NN'),
                                         ('linear_top1', 'linear probe'))):
        for side, points in sorted(lines.items()):
            points = sorted((r, row) for r, row in points if row)
            if not points:
                continue
            ax.plot([p[0] for p in points], [p[1][metric] for p in points],
                    '-o', label=f'{side}x{side} = {side * side} patches')
        ax.set_xlabel('student mask ratio')
        ax.set_ylabel(f'{name} top-1 (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle('MoCo v3 + MAE student, mask ratio by patch grid (one '
                 'seed; 7x7: the study\'s rows)', fontsize=9)
    fig.tight_layout()
    path = osp.join(work, 'mask_ratio_vs_grid.png')
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mask_ratio(plt, by_id: dict, work: str) -> str:
    """Accuracy against the student's mask ratio."""
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
    path = osp.join(work, 'acc_vs_mask_ratio.png')
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _recipe(plt, rows: List[dict], work: str) -> str:
    """Each recipe row minus its baseline, k-NN and linear, mean and std
    over seeds (the baseline's std added in quadrature)."""
    pairs = recipe_pairs(rows)
    recipe = [row for row, _ in pairs]
    metrics = [('knn_top1', 'k-NN'), ('linear_top1', 'linear probe')]
    if all(r.get('mnist_knn_top1') is not None for p in pairs for r in p):
        metrics.append(('mnist_knn_top1', 'MNIST-5k k-NN (transfer)'))
    fig, axes = plt.subplots(1, len(metrics),
                             figsize=(5 * len(metrics),
                                      0.35 * len(recipe) + 1.5),
                             sharey=True)
    ys = list(range(len(recipe)))[::-1]
    for ax, (metric, name) in zip(axes, metrics):
        diffs, errs = [], []
        for row, base in pairs:
            diffs.append(row[metric] - base[metric])
            errs.append(((row.get(metric + '_std') or 0.0)**2 +
                         (base.get(metric + '_std') or 0.0)**2)**0.5)
        colors = ['tab:green' if d > e else 'tab:red' if d < -e else
                  'tab:gray' for d, e in zip(diffs, errs)]
        ax.barh(ys, diffs, xerr=errs, color=colors, capsize=3)
        ax.axvline(0, color='black', linewidth=0.8)
        ax.set_xlabel(f'{name} top-1 minus its baseline (points)')
        ax.grid(axis='x', alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(
        [f'{r["id"]} (vs {b["id"]})' for r, b in pairs], fontsize=8)
    fig.suptitle('Recipe options against the paper\'s recipe, same '
                 'teachers, init and budget (green / red: up / down by '
                 'more than the std of the difference over seeds; grey: '
                 'within it)', fontsize=9)
    fig.tight_layout()
    path = osp.join(work, 'recipe.png')
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
