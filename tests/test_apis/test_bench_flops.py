"""mmmoma.apis.benchmark.flops: attention is counted on the CPU as on the
GPU."""
import torch

from mmmoma.apis.benchmark.flops import flop_counter_mode


def test_attention_is_counted_on_the_cpu():
    q = torch.randn(2, 3, 17, 8, requires_grad=True)
    with flop_counter_mode() as counter:
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
        forward = counter.get_total_flops()
        out.sum().backward()
    # Q K^T and A V: 2 matmuls of 2 * 17 * 17 * 8 FLOPs per (image, head);
    # the backward pass has 5 of them (Q K^T recomputed).
    assert forward == 2 * 3 * 2 * (2 * 17 * 17 * 8)
    assert counter.get_total_flops() == forward * 7 // 2
