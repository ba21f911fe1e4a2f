"""Protocol v2's sections of ``results.md``: training compute,
segmentation with the protocol's bar, and the claims at equal FLOPs, on
segmentation and the plateau."""
from typing import List

from .cells import flops_text, pm, rule_text, spread_text
from .rows import SEG_PROTOCOLS, SEG_USABLE_MIOU, seg_iters


def v2_sections(rows: List[dict], claims: List[dict], info: dict) -> List[str]:
    """Protocol v2's sections: training compute, segmentation, and the
    claims at equal FLOPs, on segmentation and the plateau check."""
    lines = [
        '', '## Training compute', '',
        'Counted, not estimated: one training step of each row\'s own config '
        'through PyTorch\'s FLOP counter (forward + backward, the frozen '
        'teachers\' forward included), per image, times the images trained; '
        'with `teacher_cache` the teachers count in the first epoch only. '
        'Not counted: evaluations, the k-NN monitor, the data pipeline and '
        'a student\'s teachers\' own pretraining (their rows give it).', '',
        '| row | epochs | per image and step | teachers\' forward in it | '
        'teacher cache | training FLOPs | matched to |',
        '|---|---:|---:|---:|---|---:|---|',
    ]
    for row in rows:
        if 'flops' not in row:
            continue
        per = row['flops_per_image']
        match = '-'
        if row.get('flops_ratio') is not None:
            match = (f'`{row["match"]}` ({flops_text(row["flops_target"])}; '
                     f'ratio {row["flops_ratio"]:.2f})')
        lines.append(
            f'| `{row["id"]}` | {row["epochs"]} | {flops_text(per["step"])} | '
            f'{flops_text(per["teachers"])} | '
            f'{"yes" if row["teacher_cache"] else "no"} | '
            f'{flops_text(row["flops"])} | {match} |')
    # a column per protocol run (v2's two; UperNet when asked for)
    protocols = [(p, s['metric']) for p, s in SEG_PROTOCOLS.items()
                 if p != 'scenes'
                 and any(r.get(s['metric']) is not None for r in rows)]
    seg_rows = [r for r in rows
                if any(r.get(m) is not None for _, m in protocols)]
    if seg_rows:
        spread = info['spread']
        seg = info['settings']['seg']
        lines += ['', '## Segmentation (mosaics)', '']
        lines += [
            f'- {m[5:]}: {SEG_PROTOCOLS[p]["model"]}, {seg_iters(seg, p)} '
            f'iterations of batch {seg["batch_size"]} on {seg["num_train"]} '
            f'{SEG_PROTOCOLS[p]["data"]}, tested on {seg["num_val"]}; '
            f'spread (pooled std) {spread_text(spread.get(m))}.'
            for p, m in protocols
        ]
        lines += [
            '', 'Mean ± std over the seeds of the segmentation training '
            '(a student\'s seed-k checkpoint with seed k; a teacher\'s one '
            'checkpoint with each seed).', '',
            '| row | ' + ' | '.join(f'{m[5:]} mIoU (%)'
                                   for _, m in protocols) + ' |',
            '|---|' + '---:|' * len(protocols),
        ]
        for row in seg_rows:
            cells = [pm(row.get(m), row.get(m + '_std'))
                     for _, m in protocols]
            lines.append(f'| `{row["id"]}` {row["label"]} | ' +
                         ' | '.join(cells) + ' |')
        lines += ['', _bar_note(claims)]
    v2 = [c for c in claims if c['number'] not in ('1', '2', '3', '4')]
    if v2:
        lines += [
            '', '## Claims at equal compute, on segmentation, and the '
            'plateau (protocol v2)', '',
            '| claim | comparison | check: difference (rule) | verdict |',
            '|---|---|---|---|',
        ]
        for claim in v2:
            cells = '; '.join(
                f'{c["metric"]}: {c["a_value"]:.2f} - {c["b_value"]:.2f} '
                f'(`{c["b"]}`) = {c["diff"]:+.2f} ({rule_text(c)}: '
                f'{"yes" if c["held"] else "no"})' for c in claim['checks'])
            lines.append(f'| {claim["number"]}. {claim["claim"]} | '
                         f'{claim["comparison"]} | {cells} | '
                         f'**{claim["verdict"]}**' +
                         (' (the protocol\'s bar not met: measured, not '
                          'decided)' if bar_not_met(claim) else '') + ' |')
    return lines


def bar_not_met(claim: dict) -> bool:
    """Whether a claim carries a protocol bar (claim 5's) that was not
    met: its verdict is then measured, not decided."""
    return (claim.get('bar') or {}).get('met') is False


def _bar_note(claims: List[dict]) -> str:
    """Whether the segmentation protocol met its bar (claim 5's ``bar``:
    the MoCo v3 teacher's fine-tuned mIoU), said before the verdict."""
    bar = next((c.get('bar') for c in claims if c['number'] == '5'), None)
    if bar is None:
        return ('- The protocol\'s bar (the MoCo v3 teacher fine-tunes to '
                f'{SEG_USABLE_MIOU:.0f}% mIoU or more) was not checked: '
                'that row or claim 5 is not in this run.')
    value = f'`{bar["row"]}` fine-tuned to {bar["value"]:.2f}% mIoU'
    if bar['met']:
        return (f'- The protocol\'s bar is met: {value} (at least '
                f'{bar["needed"]:.0f}%), so claim 5 is decided below.')
    return (f'- **The protocol\'s bar is not met**: {value}, under '
            f'{bar["needed"]:.0f}%. The models are not separated well '
            'enough from chance for claim 5 to be decided; its verdict '
            'below is what was measured.')
