"""Keyed token masks: uniform, per sample, independent of batch layout."""
import torch

from mmmoma.models.utils import keyed_token_noise, random_token_mask


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
