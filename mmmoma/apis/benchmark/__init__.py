"""Benchmarks: a training step (``step``: throughput, FLOPs, MFU, memory),
FLOP counting (``flops``), timing of steps and dataloaders (``timing``) and
of a train pipeline transform by transform (``data``).

``tools/benchmark.py`` runs :func:`mmmoma.apis.benchmark.step.main`,
``tools/analysis_tools/data_benchmark.py``
:func:`mmmoma.apis.benchmark.data.main`.
"""
