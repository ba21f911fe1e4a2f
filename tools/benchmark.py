"""Measure the training step of a config: throughput, FLOPs, MFU, memory.

Synthetic images of the model's input size (timings do not depend on the
pixel values or on the teachers' weights, so ``Pretrained`` init_cfgs are
dropped unless ``--keep-weights``). One step is counted with
``torch.utils.flop_counter`` (forward + backward, counted, not estimated) and
its forward pass split between teachers, student, necks and heads; then
``--iters`` steps are timed after ``--warmup``. Prints a table and writes
JSON::

    cfg=configs/moma/moma_vit-b_moco-mae_100e.py
    opts="--batch-size 256 --amp bf16 --peak-tflops 989"
    python tools/benchmark.py $cfg $opts --out bench.json

``--data N`` also times N batches of the config's own
train dataloader (with its ``num_workers``, in steady state: at least 2 per
worker, after the batches the workers prefetch; the dataset must be on
disk), and with ``--data-in-loop`` as many training steps fed by it: the
step with data loading in the loop. ``tools/analysis_tools/data_benchmark.py``
measures a pipeline on any folder of images, transform by transform.

``--fast`` measures the same config with the speed options of
``MomaAlgorithm`` and the optimiser (``FAST_CFG_OPTIONS``; with
``--amp bf16`` also no loss scaling), ``--compile`` adds
``model.compile=True``; naive and fast runs of one config compare directly.
The measurement is :mod:`mmmoma.apis.benchmark.step`.
"""
import os.path as osp
import sys

try:  # import mmmoma first: it patches the OpenMMLab stack
    import mmmoma  # noqa: F401
except ModuleNotFoundError:  # a checkout that is not installed: use it
    sys.path.insert(0, osp.abspath(osp.join(__file__, '../..')))

from mmmoma.apis.benchmark.step import main  # noqa: E402

if __name__ == '__main__':
    main()
