"""Per-row statistics over seeds, and the four claims of MOMA decided by
the rule of the study's protocol."""
import math
from typing import Dict, List, Optional, Tuple

from .rows import run_key


def mean_std(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (None with fewer than 2)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def aggregate(rows: List[dict], runs: Dict[str, dict], preset: dict) -> None:
    """Per row: mean and std over its seeds of every metric, in place."""
    samples = preset['train_samples'] or 60000
    for row in rows:
        found = [runs[run_key(row, s)] for s in row['seeds']]
        row['runs'] = [run_key(row, s) for s in row['seeds']]
        for metric in ('knn_top1', 'linear_top1', 'mnist_knn_top1',
                       'mnist_linear_top1', 'train_seconds'):
            row[metric], row[metric + '_std'] = mean_std(
                [r.get(metric) for r in found])
        row['images_seen'] = row['epochs'] * samples
        row['devices'] = sorted({r.get('device') for r in found
                                 if r.get('device')})
        curves = {}
        for r in found:
            for point in r.get('monitor_knn', []):
                curves.setdefault(point['epoch'], []).append(point['top1'])
        row['knn_curve'] = [[e, sum(v) / len(v)]
                            for e, v in sorted(curves.items())]


def pooled_std(rows: List[dict], metric: str,
               groups: Optional[Tuple[str, ...]] = ('main', )
               ) -> Optional[float]:
    """Root mean variance over the rows of ``groups`` (None: every row)
    with 2 or more seeds of ``metric``."""
    stds = [r.get(metric + '_std') for r in rows
            if groups is None or r['group'] in groups]
    stds = [s for s in stds if s is not None]
    if not stds:
        return None
    return math.sqrt(sum(s * s for s in stds) / len(stds))


def compare(a: dict, b: dict, metric: str, rule: str,
            spread: Optional[float]) -> dict:
    """One check of a claim: row ``a`` minus row ``b`` on ``metric``, held
    by ``rule`` against the spread (None: 0): ``'gt'`` the difference
    exceeds it, ``'ge'`` it is at least minus it, ``'le'`` at most it."""
    diff = a[metric] - b[metric]
    margin = spread or 0.0
    held = {'gt': diff > margin, 'ge': diff >= -margin,
            'le': diff <= margin}[rule]
    return dict(metric=metric, a=a['id'], b=b['id'], a_value=a[metric],
                b_value=b[metric], diff=diff, spread=spread, held=held,
                rule=rule)


def verdict(checks: List[dict]) -> str:
    """'held' when every check holds, 'did not hold' when none, else
    'mixed'."""
    passed = sum(c['held'] for c in checks)
    return ('held' if passed == len(checks) else
            'did not hold' if passed == 0 else 'mixed')


def check_claims(rows: List[dict]) -> List[dict]:
    """The four claims, each decided by the rule of the protocol."""
    by_id = {r['id']: r for r in rows}
    claims = []

    def best(ids, metric):
        return max((by_id[i] for i in ids), key=lambda r: r[metric])

    specs = [
        ('1', 'Distilling MoCo v3 and MAE together beats either alone',
         lambda m: (by_id['moco-mae'], best(['moco-only', 'mae-only'], m)),
         'gt', 'MoCo v3 + MAE student minus the better single-teacher '
         'student (same init, same budget)'),
        ('2', "The student reaches its teachers' quality with far fewer "
         'epochs',
         lambda m: (by_id['moco-mae'],
                    best(['teacher-mae', 'teacher-mocov3'], m)),
         'ge', 'MoCo v3 + MAE student minus the better teacher'),
        ('3', 'An extremely high mask ratio (0.9) works',
         lambda m: (by_id['moco-mae'], best(['mask-0.5', 'mask-0.75'], m)),
         'ge', 'mask 0.9 minus the better of mask 0.5 / 0.75'),
        ('4', "Masking the teacher's input hurts",
         lambda m: (by_id['moco-mae'], by_id['masked-teacher']),
         'gt', 'teacher input unmasked minus masked'),
    ]
    for number, text, pick, rule, what in specs:
        checks = [compare(*pick(metric), metric, rule,
                          pooled_std(rows, metric))
                  for metric in ('knn_top1', 'linear_top1')]
        claim = dict(number=number, claim=text, comparison=what, rule=rule,
                     checks=checks, verdict=verdict(checks))
        if number == '2':
            student = by_id['moco-mae']
            teacher = best(['teacher-mae', 'teacher-mocov3'], 'knn_top1')
            claim['epochs'] = dict(student=student['epochs'],
                                   teacher=teacher['epochs'])
        if number == '3':
            claim['mask_0.95'] = {m: by_id['mask-0.95'][m]
                                  for m in ('knn_top1', 'linear_top1')}
        claims.append(claim)
    return claims
