"""Protocol v2 of the study (docs/study_protocol.md, "Protocol v2"): every
run's training FLOPs, the equal-compute rows' epochs matched to them, the
segmentation fine-tune and linear probe with seeds, and the claims at
equal FLOPs and on segmentation."""
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

from ..common import (Progress, config_hash, load_config, read_cache,
                      write_cache)
from .claims import compare, mean_std, verdict
from .compute import run_flops, step_flops
from .rows import SEG_PROTOCOLS, SEG_USABLE_MIOU, run_key, seg_iters

#: Images per counted step. FLOPs per image do not depend on it (measured:
#: the two-teacher student counts 267,056,128 per image at 8, 16 and 128;
#: MoCo v3's batch x batch logits add 2 x batch x 256 per image, under
#: 1e-4 of its step); a larger batch only slows the count.
COUNT_BATCH = 16


def count_row_flops(rows: List[dict], work: str, preset: dict,
                    write_config: Callable[[dict], str], force: bool,
                    progress: Progress) -> None:
    """Count every trained row's training FLOPs per image, in place:
    ``row['flops_per_image']`` (:func:`~.compute.step_flops`'s) and
    ``row['teacher_cache']``, from the row's first run config (the seeds'
    configs differ only in their seed). Cached per row in
    ``<work>/flops/<row>.json``, keyed on the resolved config.

    Args:
        rows (list[dict]): The study's rows.
        work (str): The study's work dir.
        preset (dict): The preset (``batch_size``).
        write_config (callable): Writes a row's first run config; returns
            its path.
        force (bool): Count again even where a count is cached.
        progress (Progress): Where the progress lines go.
    """
    batch = min(preset['batch_size'], COUNT_BATCH)
    for row in rows:
        if not row['kind']:
            continue
        config = write_config(row)
        cfg = load_config(config)
        cached_path = osp.join(work, 'flops', f'{row["id"]}.json')
        key = dict(config_hash=config_hash(cfg), batch=batch)
        counted = read_cache(cached_path, key, force)
        if counted is None:
            start = time.time()
            counted = step_flops(config, batch)
            counted['seconds'] = time.time() - start  # the study's time
            write_cache(cached_path, key, counted)
            progress.log(f'FLOPs of {row["id"]}: '
                         f'{counted["step"] / 1e9:.3f} GFLOP per image and '
                         'step (forward + backward), of which teachers '
                         f'{counted["teachers"] / 1e9:.3f}')
        progress.finish(f'flops {row["id"]}')
        row['flops_per_image'] = counted
        row['teacher_cache'] = bool(cfg.model.get('teacher_cache'))


def with_matched(all_rows: List[dict], selected: List[dict]) -> List[dict]:
    """``selected`` (a ``--rows`` choice) with the rows its equal-compute
    rows are matched to, in table order: their epochs need them."""
    ids = {r['id'] for r in selected}
    ids |= {r['match'] for r in selected if 'match' in r}
    return [r for r in all_rows if r['id'] in ids]


def _total(row: dict, epochs: int, samples: int) -> float:
    return run_flops(row['flops_per_image'], samples, epochs,
                     row['teacher_cache'])[-1]


def match_epochs(rows: List[dict], preset: dict) -> None:
    """Set the epochs of each row with a ``match`` so that its training
    FLOPs are closest to those of the row it names, in place (whole epochs,
    at least 1); ``row['flops_target']`` keeps what it was matched to."""
    by_id = {r['id']: r for r in rows}
    samples = preset['train_samples'] or 60000
    for row in rows:
        if 'match' not in row or row['match'] not in by_id:
            continue
        ref = by_id[row['match']]
        target = _total(ref, ref['epochs'], samples)
        per = run_flops(row['flops_per_image'], samples, 1,
                        row['teacher_cache'])
        first = per[1]
        later = _total(row, 2, samples) - first
        epochs = 1 + (target - first) / later if target > first else 1
        row['epochs'] = max(1, int(round(epochs)))
        row['flops_target'] = target


def attach_flops(rows: List[dict], preset: dict) -> None:
    """Per counted row, in place: ``flops`` (its training FLOPs, one run),
    ``flops_curve`` (cumulative at the end of each epoch, from 0) and, for
    a matched row, ``flops_ratio`` (its FLOPs over the target's)."""
    samples = preset['train_samples'] or 60000
    for row in rows:
        if 'flops_per_image' not in row:
            continue
        row['flops_curve'] = run_flops(row['flops_per_image'], samples,
                                       row['epochs'], row['teacher_cache'])
        row['flops'] = row['flops_curve'][-1]
        if row.get('flops_target'):
            row['flops_ratio'] = row['flops'] / row['flops_target']


def seg_tasks(rows: List[dict], runs: Optional[Dict[str, dict]],
              preset: dict) -> List[dict]:
    """The segmentation runs of v2: each of the preset's ``seg['rows']``
    present, each seed of ``seg['seeds']``, each protocol of
    ``seg['protocols']``. A student's seed-``k`` checkpoint is fine-tuned
    with seed ``k``; a row trained with one seed (the teachers) gives its
    checkpoint to every seed; ``random`` gives none (random init).
    ``runs=None``: the tasks without their checkpoints (for the plan)."""
    seg = preset['seg']
    by_id = {r['id']: r for r in rows}
    tasks = []
    for protocol in seg['protocols']:
        for row_id in seg['rows']:
            row = by_id.get(row_id)
            if row is None:
                continue
            for seed in seg['seeds']:
                run = run_key(row, seed if seed in row['seeds'] else
                              row['seeds'][0])
                tasks.append(dict(
                    protocol=protocol, row=row_id, seed=seed,
                    name=f'{row_id}-s{seed}',
                    checkpoint=runs[run]['checkpoint']
                    if row['kind'] and runs is not None else None))
    return tasks


def seg_settings(preset: dict, protocol: str) -> dict:
    """The settings of one segmentation run of ``protocol``: the preset's
    sizes, not its lists of rows, seeds and protocols, nor how many run
    at once (a segmentation result stays valid when another row or seed
    is added)."""
    seg = {k: v for k, v in preset['seg'].items()
           if k not in ('rows', 'seeds', 'protocols', 'jobs')}
    return dict(seg, iters=seg_iters(seg, protocol), protocol=protocol)


def aggregate_seg(rows: List[dict], tasks: List[dict],
                  results: List[dict]) -> None:
    """Per segmented row and protocol: ``miou_<protocol>`` and its std
    over seeds, in place."""
    by_id = {r['id']: r for r in rows}
    values: Dict[tuple, List[float]] = {}
    for task, result in zip(tasks, results):
        metric = SEG_PROTOCOLS[task['protocol']]['metric']
        values.setdefault((task['row'], metric), []).append(result['miou'])
    for (row_id, metric), found in values.items():
        by_id[row_id][metric], by_id[row_id][metric + '_std'] = mean_std(
            found)


def check_claims_v2(rows: List[dict], spread: Dict[str, float]) -> List[dict]:
    """The claims that v2 adds to v1's (:func:`~.claims.check_claims`):
    2 and 3 at equal training FLOPs, 5 on segmentation (fine-tuned mIoU,
    against ``spread['miou_finetune']``), and the plateau check. Each
    present only when its rows are."""
    by_id = {r['id']: r for r in rows}
    claims = []
    metrics = ('knn_top1', 'linear_top1')

    def have(*ids):
        return all(i in by_id and by_id[i].get('knn_top1') is not None
                   for i in ids)

    if have('moco-mae', 'teacher-mae-flops', 'teacher-mocov3-flops'):
        checks = []
        for m in metrics:
            better = max((by_id['teacher-mae-flops'],
                          by_id['teacher-mocov3-flops']), key=lambda r: r[m])
            checks.append(compare(by_id['moco-mae'], better, m, 'ge',
                                 spread.get(m)))
        claims.append(dict(
            number='2 (FLOPs)', claim="The student reaches its teachers' "
            'quality at equal training compute', rule='ge',
            comparison='MoCo v3 + MAE student minus the better teacher '
            'trained for as many FLOPs', checks=checks,
            verdict=verdict(checks)))
    pairs = [(f'mask-0.9-flops-{r}', f'mask-{r}') for r in ('0.5', '0.75')]
    if all(have(a, b) for a, b in pairs):
        checks = []
        for m in metrics:
            # the worse of the two differences decides, as v1's "better of"
            diffs = [compare(by_id[a], by_id[b], m, 'ge', spread.get(m))
                     for a, b in pairs]
            checks.append(min(diffs, key=lambda c: c['diff']))
        claims.append(dict(
            number='3 (FLOPs)', claim='An extremely high mask ratio (0.9) '
            'works at equal training compute', rule='ge',
            comparison='mask 0.9 trained as long as mask R costs, minus '
            'mask R (the smaller difference of R = 0.5, 0.75)',
            checks=checks, verdict=verdict(checks)))
    seg = 'miou_finetune'
    teachers = [by_id[t] for t in ('teacher-mae', 'teacher-mocov3')
                if by_id.get(t, {}).get(seg) is not None]
    if teachers and all(by_id.get(i, {}).get(seg) is not None
                        for i in ('moco-mae', 'random')):
        s_seg = spread.get(seg)
        better = max(teachers, key=lambda r: r[seg])
        checks = [compare(by_id['moco-mae'], by_id['random'], seg, 'gt',
                         s_seg),
                  compare(by_id['moco-mae'], better, seg, 'ge', s_seg)]
        moco = by_id.get('teacher-mocov3', {}).get(seg)
        claims.append(dict(
            number='5', claim='The student transfers to segmentation',
            rule='gt, ge', comparison='MoCo v3 + MAE student minus random '
            'init (> s_seg), minus the better teacher segmented (>= '
            '-s_seg), fine-tuned mIoU', checks=checks,
            verdict=verdict(checks),
            bar=None if moco is None else dict(
                row='teacher-mocov3', value=moco, needed=SEG_USABLE_MIOU,
                met=moco >= SEG_USABLE_MIOU)))
    if have('moco-mae', 'moco-mae-long'):
        checks = [compare(by_id['moco-mae-long'], by_id['moco-mae'], m, 'le',
                         spread.get(m)) for m in metrics]
        claims.append(dict(
            number='plateau', claim="The students' budget is a plateau "
            '(else they were still learning)', rule='le',
            comparison='twice the epochs minus the budget (a plateau when '
            '<= s on both)', checks=checks, verdict=verdict(checks)))
    return claims
