import math

import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.models import MomaNeck
from mmmoma.models.utils import random_token_mask, vit_forward_tokens


@pytest.mark.parametrize('mode', ['decoder', 'linear', 'mlp'])
def test_output_is_full_grid(mode):
    torch.manual_seed(0)
    neck = MomaNeck(
        in_channels=16,
        out_channels=24,
        patch_resolution=4,
        mode=mode,
        decoder_embed_dims=16,
        decoder_depth=1,
        decoder_num_heads=2,
        hidden_channels=32)
    neck.init_weights()
    ids_keep, ids_restore, mask = random_token_mask(3, 16, 0.75, 'cpu')
    x = torch.randn(3, 1 + ids_keep.shape[1], 16)
    out = neck(x, ids_restore)
    assert out.shape == (3, 17, 24)
    assert neck.predicts_masked == (mode == 'decoder')
    if mode != 'decoder':
        # Hidden positions hold zeros; visible ones hold the projection of
        # the right input token.
        hidden = out[:, 1:][mask.bool()]
        assert torch.count_nonzero(hidden) == 0
        b, j = 1, 2
        pos = ids_keep[b, j]
        assert torch.allclose(out[b, 1 + pos], neck.proj(x[b, 1 + j]),
                              atol=1e-6)
        assert torch.allclose(out[:, 0], neck.proj(x[:, 0]), atol=1e-6)


def _sincos_2d(side: int, dims: int) -> torch.Tensor:
    """(1, 1 + side**2, dims): zeros for the class token, then for the patch
    in row r, column c (row-major): sin(r w), cos(r w), sin(c w), cos(c w)
    with w_k = 10000**(-k / (dims / 4)), written out from the formula
    (MMPretrain's order; MAE's numpy code puts the column first, the same
    table for the transposed grid)."""
    quarter = dims // 4
    out = torch.zeros(1, 1 + side * side, dims, dtype=torch.float64)
    for r in range(side):
        for c in range(side):
            for k in range(quarter):
                w = 10000.0**(-k / quarter)
                i = 1 + r * side + c
                out[0, i, k] = math.sin(r * w)
                out[0, i, quarter + k] = math.cos(r * w)
                out[0, i, 2 * quarter + k] = math.sin(c * w)
                out[0, i, 3 * quarter + k] = math.cos(c * w)
    return out.float()


def test_decoder_positions_are_fixed_sincos():
    torch.manual_seed(0)
    neck = MomaNeck(16, 8, patch_resolution=4, decoder_embed_dims=16,
                    decoder_num_heads=2, decoder_depth=1)
    neck.init_weights()
    assert not neck.pos_embed.requires_grad
    expected = _sincos_2d(4, 16)
    torch.testing.assert_close(neck.pos_embed.data, expected, rtol=0,
                               atol=1e-6)
    # fixed: a training step leaves them as they are
    ids_keep, ids_restore, _ = random_token_mask(2, 16, 0.75, 'cpu')
    optim = torch.optim.AdamW(neck.parameters(), lr=0.1)
    neck(torch.randn(2, 1 + ids_keep.shape[1], 16), ids_restore).sum(
    ).backward()
    optim.step()
    torch.testing.assert_close(neck.pos_embed.data, expected, rtol=0,
                               atol=1e-6)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode='conv'"):
        MomaNeck(16, 8, mode='conv')


def test_random_mask_is_consistent():
    ids_keep, ids_restore, mask = random_token_mask(4, 50, 0.9, 'cpu')
    assert ids_keep.shape == (4, 5)
    assert mask.sum(1).tolist() == [45.0] * 4
    for b in range(4):
        # kept ids are exactly the unmasked positions
        visible = torch.nonzero(mask[b] == 0).flatten().tolist()
        assert sorted(ids_keep[b].tolist()) == visible


def test_token_forward_matches_backbone_forward():
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(
        arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                  feedforward_channels=64),
        img_size=32, patch_size=8, out_type='raw', out_indices=[1, 2])
    vit.init_weights()
    vit.eval()
    x = torch.randn(2, 3, 32, 32)
    outs = vit(x)
    assert torch.allclose(vit_forward_tokens(vit, x), outs[1], atol=1e-6)
    assert torch.allclose(vit_forward_tokens(vit, x, layer=1), outs[0],
                          atol=1e-6)
    # With a subset of tokens, each visible token attends only to visible
    # ones: dropping every token but one gives the one-token result.
    ids = torch.tensor([[3], [7]])
    sub = vit_forward_tokens(vit, x, ids)
    assert sub.shape == (2, 2, 32)
