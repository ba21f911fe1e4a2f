"""TargetNorm and the head's statistics norms, against hand computations."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmmoma.models import SmoothL1AlignHead, TargetNorm
from mmmoma.models.target_norm import hadamard


def anisotropic(n=4000, tokens=5, channels=8, seed=0):
    """(n, tokens, C) features whose covariance spans 4 orders of magnitude,
    in a random basis, with a non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g))
    scales = torch.logspace(-2, 2, channels).sqrt()
    x = torch.randn(n, tokens, channels, generator=g) * scales
    return (x @ basis.T + torch.arange(channels) * 0.5).float()


@pytest.mark.parametrize('n', [1, 2, 4, 12, 20, 128, 192, 384, 768, 1024,
                               1280])
def test_hadamard_is_orthogonal_with_equal_magnitudes(n):
    h = hadamard(n)
    torch.testing.assert_close(h @ h.T, torch.eye(n, dtype=torch.float64))
    torch.testing.assert_close(h.abs(), torch.full_like(h, n**-0.5))


def test_hadamard_refuses_an_order_it_cannot_build():
    with pytest.raises(ValueError, match='order 6 .*teacher width'):
        hadamard(6)
    with pytest.raises(ValueError, match='order 6'):
        TargetNorm('phi_s', channels=6)


def test_channel_norm_warm_start_then_ema_by_hand():
    x1, x2 = anisotropic(seed=1)[:64], anisotropic(seed=2)[:64]
    valid = torch.ones(64, 5, dtype=torch.bool)
    valid[:8, 3] = False  # these tokens must not count
    norm = TargetNorm('channel', channels=8, momentum=0.1)
    out = norm(x1, valid, update=True)

    def stats(x, v):
        cls = x[:, 0][v[:, 0]].double()
        patches = x[:, 1:][v[:, 1:]].double()
        return (torch.stack([cls.mean(0), patches.mean(0)]),
                torch.stack([cls.var(0, unbiased=False),
                             patches.var(0, unbiased=False)]))

    mean1, var1 = stats(x1, valid)  # the first batch sets them
    torch.testing.assert_close(norm.mean, mean1)
    torch.testing.assert_close(norm.var, var1)
    group = torch.tensor([0, 1, 1, 1, 1])
    want = (x1 - mean1[group].float()) / (var1[group] + 1e-5).sqrt().float()
    torch.testing.assert_close(out, want)
    norm(x2, None, update=True)
    mean2, var2 = stats(x2, torch.ones_like(valid))
    torch.testing.assert_close(norm.mean, 0.9 * mean1 + 0.1 * mean2)
    torch.testing.assert_close(norm.var, 0.9 * var1 + 0.1 * var2)
    assert norm.updates.tolist() == [2, 2]
    before = norm.mean.clone()
    norm(x2, None, update=False)  # evaluation: statistics stay
    assert torch.equal(norm.mean, before)


def test_position_norm_has_statistics_per_position():
    x = anisotropic()[:100]
    x[:, 2] += 10.0  # one position far off the others
    norm = TargetNorm('position', channels=8, num_tokens=5)
    out = norm(x, None, update=True)
    torch.testing.assert_close(norm.mean, x.double().mean(0))
    torch.testing.assert_close(out.mean(0), torch.zeros(5, 8), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(
        out.var(0, unbiased=False), torch.ones(5, 8), atol=1e-3, rtol=0)


def test_phi_s_by_hand_invertible_and_isotropic_per_channel():
    x = anisotropic(channels=12)
    norm = TargetNorm('phi_s', channels=12)
    out = norm(x, None, update=True)
    patches = x[:, 1:].reshape(-1, 12).double()
    mean = patches.mean(0)
    cov = (patches - mean).T @ (patches - mean) / patches.shape[0]
    eigval, eigvec = torch.linalg.eigh(cov)
    transform = hadamard(12) @ eigvec.T / (eigval.mean() + 1e-5).sqrt()
    torch.testing.assert_close(norm.transform[1], transform)
    want = (x[:, 1:].double() - mean) @ transform.T
    torch.testing.assert_close(out[:, 1:], want.float(), atol=1e-4,
                               rtol=1e-4)
    # every channel carries the same variance, 1, though the input's
    # principal variances span 4 orders of magnitude
    var = out[:, 1:].reshape(-1, 12).var(0, unbiased=False)
    assert eigval.max() / eigval.min() > 1e3
    torch.testing.assert_close(var, torch.ones(12), atol=2e-3, rtol=0)
    # total variance is kept up to the one isotropic factor
    torch.testing.assert_close(var.sum(), torch.tensor(12.0), atol=1e-2,
                               rtol=0)
    torch.testing.assert_close(norm.inverse(out), x, atol=1e-4, rtol=1e-4)


def test_phi_s_refresh_interval_keeps_the_transform_between_refreshes():
    norm = TargetNorm('phi_s', channels=8, refresh_interval=3)
    norm(anisotropic(seed=1)[:50], None, update=True)  # update 1: refresh
    first = norm.transform.clone()
    norm(anisotropic(seed=2)[:50], None, update=True)
    norm(anisotropic(seed=3)[:50], None, update=True)
    assert torch.equal(norm.transform, first)
    norm(anisotropic(seed=4)[:50], None, update=True)  # update 4: refresh
    assert not torch.equal(norm.transform, first)


def test_fixed_statistics_from_accumulated_batches():
    x = anisotropic()[:90]
    norm = TargetNorm('channel', channels=8, stats='fixed')
    with pytest.raises(RuntimeError, match='TargetStatsHook'):
        norm(x, None, update=True)
    for part in x.split(30):
        norm.accumulate(part)
    norm.finish()
    patches = x[:, 1:].reshape(-1, 8).double()
    torch.testing.assert_close(norm.mean[1], patches.mean(0))
    torch.testing.assert_close(norm.var[1], patches.var(0, unbiased=False))
    before = (norm.mean.clone(), norm.var.clone())
    norm(anisotropic(seed=5)[:30], None, update=True)  # fixed: no update
    assert torch.equal(norm.mean, before[0])
    assert torch.equal(norm.var, before[1])


@pytest.mark.parametrize('mode', ['channel', 'position', 'phi_s'])
def test_statistics_are_saved_and_restored_with_the_head(mode):
    head = SmoothL1AlignHead(target_norm=mode, in_channels=8, num_tokens=5)
    head.train()
    pred, x = torch.randn(4, 5, 8), anisotropic()[:4]
    mask = torch.zeros(4, 4)
    head.loss(pred, x, mask)  # training: statistics move
    assert head.norm.updates.sum() > 0
    state = head.state_dict()
    assert {'norm.mean', 'norm.updates'} <= set(state)
    other = SmoothL1AlignHead(target_norm=mode, in_channels=8, num_tokens=5)
    other.load_state_dict(state, strict=True)
    head.eval(), other.eval()
    assert torch.equal(head.loss(pred, x, mask), other.loss(pred, x, mask))


def test_head_statistics_norm_loss_by_hand():
    head = SmoothL1AlignHead(target_norm='channel', in_channels=8,
                             num_tokens=5, positions='masked')
    head.train()
    pred, x = torch.randn(6, 5, 8), anisotropic()[:6]
    mask = torch.tensor([[1., 0., 1., 0.]] * 6)
    loss = head.loss(pred, x, mask)
    target = head.norm(x)  # statistics of this batch, now set
    keep = [0, 1, 3]  # class token, then the masked patches 0 and 2
    want = torch.nn.functional.smooth_l1_loss(pred[:, keep], target[:, keep])
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize('kwargs,match', [
    (dict(target_norm='batch'), "target_norm='batch'"),
    (dict(target_norm='channel'), 'needs in_channels'),
    (dict(target_norm='position', in_channels=8), 'needs num_tokens'),
    (dict(target_norm='channel', in_channels=8, target_stats='online'),
     "target_stats='online'"),
    (dict(target_norm='channel', in_channels=8, target_momentum=0),
     'target_momentum=0'),
    (dict(target_norm='phi_s', in_channels=8, target_refresh_interval=0),
     'target_refresh_interval=0'),
])
def test_bad_statistics_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SmoothL1AlignHead(**kwargs)


def _update_in_process(rank, world, init_file, mode, x, out):
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world)
    norm = TargetNorm(mode, channels=8, num_tokens=5)
    for batch in x.split(len(x) // 2):  # two steps
        half = len(batch) // world
        norm(batch[rank * half:(rank + 1) * half], None, update=True)
    if rank == 0:
        torch.save(norm.state_dict(), out)
    dist.destroy_process_group()


@pytest.mark.parametrize('mode', ['channel', 'phi_s'])
def test_two_gloo_processes_agree_with_one(tmp_path, mode):
    x = anisotropic(n=64)
    one = TargetNorm(mode, channels=8, num_tokens=5)
    for batch in x.split(32):
        one(batch, None, update=True)
    out = tmp_path / 'two.pth'
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.spawn(_update_in_process, args=(2, tmp_path / 'init', mode, x, out),
             nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    for key, value in one.state_dict().items():
        torch.testing.assert_close(two[key], value, rtol=1e-9, atol=1e-9)


def test_statistics_norms_stay_float32_under_autocast():
    x = anisotropic()[:32]
    norm = TargetNorm('phi_s', channels=8)
    want = norm(x, None, update=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = norm(x, None, update=False)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
