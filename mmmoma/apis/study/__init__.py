"""The MOMA evidence study on Fashion-MNIST (``tools/study.py``).

Tests the four claims of MOMA (arXiv 2302.02089) at a small scale, with the
protocol of ``docs/study_protocol.md``: teachers, students and ablations
(:mod:`.rows`), trained through the demo's training step (:mod:`.runs`),
evaluated by k-NN and a linear probe, on Fashion-MNIST and on MNIST-5k
(:mod:`.evaluate`), and by segmentation
(:mod:`.segment`), aggregated over seeds with the claims decided
(:mod:`.claims`), reported (:mod:`.report`, :mod:`.report_v2`,
:mod:`.plots`);
:func:`main` runs it all (:mod:`.pipeline`).
"""
from .claims import aggregate, check_claims, mean_std, pooled_std
from .pipeline import main, parse_args
from .rows import PRESETS, run_key, select_rows, study_rows

__all__ = [
    'PRESETS', 'aggregate', 'check_claims', 'main', 'mean_std',
    'parse_args', 'pooled_std', 'run_key', 'select_rows', 'study_rows'
]
