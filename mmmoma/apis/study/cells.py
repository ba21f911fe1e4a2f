"""Cells of the study's tables: a mean with its std, a spread, FLOPs, a
check's rule."""
from typing import Optional


def pm(mean: Optional[float], std: Optional[float]) -> str:
    """``mean ± std`` with 2 decimals; ``'-'`` without a mean."""
    if mean is None:
        return '-'
    return f'{mean:.2f} ± {std:.2f}' if std is not None else f'{mean:.2f}'


def spread_text(value: Optional[float]) -> str:
    """A spread with 2 decimals, or what its absence means."""
    return f'{value:.2f}' if value is not None else '0, one seed'


def flops_text(value: Optional[float]) -> str:
    """FLOPs in engineering units (PFLOP, TFLOP, GFLOP)."""
    if value is None:
        return '-'
    for unit, scale in (('PFLOP', 1e15), ('TFLOP', 1e12)):
        if value >= scale:
            return f'{value / scale:.2f} {unit}'
    return f'{value / 1e9:.2f} GFLOP'


def rule_text(check: dict) -> str:
    """A check's rule with its margin, as the claims tables print it."""
    margin = check['spread'] or 0.0
    if check['rule'] == 'ge':
        return f'>= -{margin:.2f}' if margin else '>= 0.00'
    return f'{">" if check["rule"] == "gt" else "<="} {margin:.2f}'
