"""Keyed token masks: uniform, per sample, independent of batch layout;
the student's forward on the kept tokens."""
import pytest
import torch

import mmmoma  # noqa: F401  (first: its fixes precede mmpretrain)
from mmmoma.models.utils import (keyed_token_noise, random_token_mask,
                                 vit_forward_tokens)


def _keys(ids, step=0, seed=1234, num_tokens=16):
    return keyed_token_noise(
        torch.tensor(seed), torch.tensor(step), torch.tensor(ids), num_tokens)


def test_a_sample_gets_the_same_mask_in_any_batch():
    whole = _keys(list(range(8)))
    halves = torch.cat([_keys([0, 2, 4, 6]), _keys([1, 3, 5, 7])])
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    assert torch.equal(whole[order], halves)
    keep = random_token_mask(8, 16, 0.75, 'cpu', whole)[0]
    keep_halves = random_token_mask(8, 16, 0.75, 'cpu', halves)[0]
    assert torch.equal(keep[order], keep_halves)


def test_masks_change_with_step_seed_and_sample():
    base = _keys([0, 1])
    assert not torch.equal(base, _keys([0, 1], step=1))
    assert not torch.equal(base, _keys([0, 1], seed=99))
    assert not torch.equal(base[0], base[1])


def test_masks_are_uniform():
    # 20k samples: every token is kept 25% of the time (mask ratio 0.75)
    ids_keep, ids_restore, mask = random_token_mask(
        20000, 16, 0.75, 'cpu', _keys(list(range(20000))))
    kept = torch.bincount(ids_keep.flatten(), minlength=16).float() / 20000
    assert (kept - 0.25).abs().max() < 0.015  # 5 sigma of a fair draw
    assert torch.equal(mask.sum(1), torch.full((20000, ), 12.0))
    # the kept set is a uniform 4-subset: pairs co-occur at 4*3/(16*15)
    pair = ((ids_keep == 0).any(1) & (ids_keep == 1).any(1)).float().mean()
    assert abs(pair.item() - 12 / 240) < 0.008


@pytest.mark.parametrize('student', ['VisionTransformer', 'MAEViT'])
def test_masked_token_forward_matches_a_vit_on_the_kept_patches(student):
    """The student's forward on kept patches equals an MMPretrain ViT's own
    full forward of an image made of those patches alone (a 1 x Lk strip)
    whose position embedding is the kept patches' positions."""
    import mmpretrain.models as models
    torch.manual_seed(0)
    arch = dict(embed_dims=32, num_layers=2, num_heads=2,
                feedforward_channels=64)
    vit = getattr(models, student)(arch=arch, img_size=32, patch_size=8)
    vit.init_weights()
    with torch.no_grad():  # a learnt-looking, not all-zero, class token
        vit.cls_token.normal_()
    vit.eval()
    images = torch.randn(2, 3, 32, 32)
    ids_keep = torch.tensor([[5, 0, 13, 10], [15, 3, 6, 1]])
    got = vit_forward_tokens(vit, images, ids_keep)
    assert got.shape == (2, 5, 32)
    for b in range(2):
        # the kept 8 x 8 patches side by side, in ids_keep order
        patches = images[b].unfold(1, 8, 8).unfold(2, 8, 8)  # (3, 4, 4, 8, 8)
        patches = patches.reshape(3, 16, 8, 8)[:, ids_keep[b]]
        # (1, 3, 8, 32)
        strip = torch.cat(list(patches.unbind(1)), dim=2)[None]
        ref = models.VisionTransformer(
            arch=arch, img_size=(8, 32), patch_size=8, out_type='raw')
        state = dict(vit.state_dict())
        pos = vit.pos_embed  # (1, 1 + 16, C): the class token's, then patches
        state['pos_embed'] = torch.cat(
            [pos[:, :1], pos[:, 1:][:, ids_keep[b]]], dim=1)
        ref.load_state_dict(state)
        ref.eval()
        with torch.no_grad():
            want = ref(strip)[-1]  # (1, 1 + Lk, C)
        torch.testing.assert_close(got[b:b + 1], want, rtol=1e-5, atol=1e-5)
    # and what it computes does depend on which patches are kept
    other = vit_forward_tokens(vit, images, ids_keep.flip(0))
    assert not torch.allclose(other, got, atol=1e-3)
