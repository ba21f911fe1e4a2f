"""The study's plots: k-NN during training, accuracy by mask ratio."""
import os.path as osp
from typing import List


def plot(rows: List[dict], work: str, info: dict) -> List[str]:
    """knn_vs_epochs.png and acc_vs_mask_ratio.png."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_id = {r['id']: r for r in rows}
    preset = info['settings']
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row['group'] not in ('teacher', 'main') or not row['knn_curve']:
            continue
        xs, ys = zip(*row['knn_curve'])
        style = '-o' if row['group'] == 'teacher' else '--s'
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
    paths.append(osp.join(work, 'acc_vs_mask_ratio.png'))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
