import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.models import SmoothL1AlignHead


def _hand_smooth_l1(pred, target, beta):
    """Smooth L1 written out from its definition, elementwise."""
    diff = (pred - target).abs()
    return torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)


def _hand_layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean)**2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize('positions', ['masked', 'visible', 'all'])
@pytest.mark.parametrize('with_cls', [True, False])
def test_loss_matches_hand_computation(positions, with_cls):
    torch.manual_seed(0)
    B, L, C, beta = 2, 6, 5, 0.7
    pred = torch.randn(B, 1 + L, C) * 3
    target = torch.randn(B, 1 + L, C) * 4 + 2
    mask = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 0, 1, 1, 1, 1]]).float()
    head = SmoothL1AlignHead(
        beta=beta, positions=positions, with_cls_token=with_cls)

    per_token = _hand_smooth_l1(pred, _hand_layer_norm(target), beta).mean(-1)
    total, count = 0.0, 0
    for b in range(B):
        if with_cls:
            total, count = total + per_token[b, 0], count + 1
        for i in range(L):
            m = bool(mask[b, i])
            if positions == 'all' or (positions == 'masked') == m:
                total, count = total + per_token[b, 1 + i], count + 1
    expected = total / count
    assert torch.allclose(head.loss(pred, target, mask), expected, atol=1e-6)


def test_valid_positions_and_no_norm():
    torch.manual_seed(0)
    pred, target = torch.randn(1, 4, 3), torch.randn(1, 4, 3)
    mask = torch.tensor([[1., 0., 1.]])
    valid = torch.tensor([[False, True, True, False]])
    head = SmoothL1AlignHead(beta=1.0, target_norm='none', positions='all')
    per_token = _hand_smooth_l1(pred, target, 1.0).mean(-1)
    expected = per_token[0, 1:3].mean()
    assert torch.allclose(head.loss(pred, target, mask, valid), expected)


@pytest.mark.parametrize('loss_type', ['smooth_l1', 'mse', 'cosine'])
@pytest.mark.parametrize('target_norm', ['layer_norm', 'none'])
def test_target_gets_no_gradient_and_pred_does(loss_type, target_norm):
    torch.manual_seed(0)
    pred = torch.randn(2, 5, 4, requires_grad=True)
    target = torch.randn(2, 5, 4, requires_grad=True)  # as if not frozen
    head = SmoothL1AlignHead(loss_type=loss_type, target_norm=target_norm)
    head.loss(pred, target, torch.ones(2, 4)).backward()
    assert target.grad is None  # the head itself cuts the target's graph
    assert pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs,word', [
    (dict(positions='hidden'), 'positions'),
    (dict(target_norm='batch'), 'target_norm'),
    (dict(beta=0.0), 'beta'),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SmoothL1AlignHead(**kwargs)


@pytest.mark.parametrize('loss_type', ['mse', 'cosine'])
def test_align_head_loss_types_match_hand_computation(loss_type):
    torch.manual_seed(0)
    pred, target = torch.randn(2, 4, 6), torch.randn(2, 4, 6) * 3 + 1
    mask = torch.tensor([[1., 0., 1.], [0., 1., 1.]])
    head = SmoothL1AlignHead(loss_type=loss_type, positions='masked',
                             with_cls_token=False)
    normed = _hand_layer_norm(target)
    if loss_type == 'mse':
        per_token = ((pred - normed)**2).mean(-1)
    else:
        per_token = 1 - (pred * normed).sum(-1) / (
            pred.norm(dim=-1) * normed.norm(dim=-1))
    expected = (per_token[0, 1] + per_token[0, 3] + per_token[1, 2] +
                per_token[1, 3]) / 4
    assert torch.allclose(head.loss(pred, target, mask), expected,
                          atol=1e-6)
    with pytest.raises(ValueError, match="loss_type='l1'"):
        SmoothL1AlignHead(loss_type='l1')
