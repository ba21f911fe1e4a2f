"""FLOPs of one training step, counted with ``torch.utils.flop_counter``.

Counted, not estimated: every aten op of the step goes through PyTorch's
counter, forward and backward. Attention is counted on the CPU with the
formulas PyTorch uses for its CUDA kernels, so a CPU count equals a GPU one.
"""
from typing import Dict

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


def _eager():
    """Run compiled modules eagerly: FLOPs are counted on eager ops."""
    return torch.compiler.set_stance('force_eager')


def _cpu_attention_formulas() -> dict:
    """FLOP formulas of the CPU flash-attention ops, which torch's counter
    lacks (it counts the CUDA ones): the same as for the CUDA kernels."""
    aten = torch.ops.aten
    if not hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        return {}

    def forward(query_shape, key_shape, value_shape, *args, **kwargs):
        return flop_counter.sdpa_flop_count(query_shape, key_shape,
                                            value_shape)

    def backward(grad_out_shape, query_shape, key_shape, value_shape, *args,
                 **kwargs):
        return flop_counter.sdpa_backward_flop_count(
            grad_out_shape, query_shape, key_shape, value_shape)

    return {
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }


def flop_counter_mode() -> FlopCounterMode:
    """A silent counter that also counts attention on the CPU.

    Returns:
        FlopCounterMode: Use as a context manager, then read
        ``get_total_flops()`` / ``get_flop_counts()``.
    """
    return FlopCounterMode(
        display=False, custom_mapping=_cpu_attention_formulas())


def count_flops(model: torch.nn.Module, optim_wrapper,
                data: dict) -> Dict[str, float]:
    """FLOPs of one training step, and the forward split between parts.

    ``total`` counts forward + backward. The per-part numbers (one per
    child module of the model) count the forward pass only:
    FlopCounterMode attributes backward FLOPs to whichever module is
    current, which is not reliable per part.

    Args:
        model (torch.nn.Module): An MMEngine model in train mode.
        optim_wrapper (OptimWrapper): Its optimiser wrapper; the counted
            step updates the weights like any other.
        data (dict): A batch as a dataloader gives it (``inputs``,
            ``data_samples``).

    Returns:
        Dict[str, float]: ``total``, ``forward`` and ``forward_<child>``
        for each child module that runs ops (``teachers``, ``backbone``,
        ``necks``...), in FLOPs for the whole batch.
    """
    counter = flop_counter_mode()
    with counter, _eager():
        model.train_step(data, optim_wrapper)
    split = {'total': float(counter.get_total_flops())}
    counter = flop_counter_mode()
    with counter, _eager(), torch.no_grad():
        batch = model.data_preprocessor(data, True)
        model(**batch, mode='loss')
    counts = counter.get_flop_counts()
    split['forward'] = float(counter.get_total_flops())
    root = type(model).__name__
    # The model's children: teachers, backbone, necks, heads for MOMA;
    # backbone, neck, head (and momentum_encoder) for MMPretrain's.
    parts = [n for n, _ in model.named_children() if n != 'data_preprocessor']
    for part in parts:
        # The student and ViT teachers run block by block (no call of the
        # backbone itself): sum the outermost modules seen under the part.
        keys = [k for k in counts if k.startswith(f'{root}.{part}.')]
        outer = [
            k for k in keys
            if not any(k.startswith(other + '.') for other in keys)
        ]
        if outer:
            split[f'forward_{part}'] = float(
                sum(sum(counts[k].values()) for k in outer))
    return split
