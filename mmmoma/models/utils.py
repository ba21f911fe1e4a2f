"""Token masking and token-level ViT forward shared by student and teachers."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import nn


def num_visible_tokens(num_tokens: int, mask_ratio: float) -> int:
    """Number of tokens kept by :func:`random_token_mask`.

    MAE's ``int(L * (1 - r))``, with a tolerance so that float error does not
    drop a token (``int(50 * (1 - 0.9))`` is 4 in floating point).
    """
    return int(num_tokens * (1 - mask_ratio) + 1e-6)


# SplitMix64's multipliers and increment (Steele et al., 2014) as signed
# int64: torch has no uint64 arithmetic, and int64 products wrap.
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 ``x`` (torch's ``>>`` is arithmetic)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser: a bijective hash of int64 values."""
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def keyed_token_noise(seed: torch.Tensor, step: torch.Tensor,
                      sample_ids: torch.Tensor,
                      num_tokens: int) -> torch.Tensor:
    """Random sort keys that depend only on (seed, step, sample, token).

    A sample's mask is then the same whichever process, batch slot or
    batch size it is drawn in, so that N processes x B images train exactly
    like 1 process x N*B images, and a resumed run redraws the same masks.

    Args:
        seed (torch.Tensor): () int64, the stream's seed.
        step (torch.Tensor): () int64, the training step.
        sample_ids (torch.Tensor): (B, ) int64 dataset indices.
        num_tokens (int): L.

    Returns:
        torch.Tensor: (B, L) int64 keys, uniformly distributed; sorting them
        gives a uniformly random permutation per sample.
    """
    key = _mix64(seed + _GOLDEN * (step + 1))
    key = _mix64(key ^ (sample_ids.to(torch.int64) * _GOLDEN))  # (B, )
    tokens = torch.arange(num_tokens, device=sample_ids.device)
    return _mix64(key[:, None] + (tokens[None, :] + 1) * _GOLDEN)


def keyed_uniform(seed: torch.Tensor, step: torch.Tensor,
                  sample_ids: torch.Tensor, num: int) -> torch.Tensor:
    """(B, num) float64 uniforms in [0, 1) keyed like
    :func:`keyed_token_noise` (the top 53 bits of its keys)."""
    key = keyed_token_noise(seed, step, sample_ids, num)
    return _shr(key, 11).double() * 2.0**-53


def sample_indices(ids: List[Optional[int]],
                   device: torch.device) -> Optional[torch.Tensor]:
    """The batch's dataset indices as a (B, ) int64 tensor on ``device``.

    Args:
        ids (list[int | None]): ``sample_idx`` of each data sample.
        device (torch.device): Where the batch is.

    Returns:
        torch.Tensor | None: None if a sample has no index (then masks come
        from the global generator); every MMEngine dataset sets them.
    """
    if not ids or None in ids:
        return None
    sample_ids = torch.tensor(ids, dtype=torch.int64)
    if device.type == 'cuda':  # a pinned copy does not wait for the GPU
        sample_ids = sample_ids.pin_memory()
    return sample_ids.to(device, non_blocking=True)


def random_token_mask(
    batch_size: int,
    num_tokens: int,
    mask_ratio: float,
    device: torch.device,
    noise: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw an independent random token mask per sample, MAE-style.

    Args:
        batch_size (int): B.
        num_tokens (int): L, the number of patch tokens.
        mask_ratio (float): Fraction of the L tokens to hide.
        device (torch.device): Where to create the tensors.
        noise (torch.Tensor, optional): (B, L) sort keys, e.g. from
            :func:`keyed_token_noise`; the lowest are kept. Defaults to None:
            ``torch.rand`` from the global generator.

    Returns:
        tuple: ``ids_keep`` (B, Lk) indices of the visible tokens,
        ``ids_restore`` (B, L) the permutation that puts ``[visible, masked]``
        back in image order, and ``mask`` (B, L) with 1 for a masked token.
    """
    len_keep = num_visible_tokens(num_tokens, mask_ratio)
    if noise is None:
        noise = torch.rand(batch_size, num_tokens, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    mask = (ids_restore >= len_keep).float()
    return ids_keep, ids_restore, mask


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Pick tokens ``x[b, ids[b]]``: (B, L, C), (B, K) -> (B, K, C)."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def unshuffle_tokens(visible: torch.Tensor, ids_restore: torch.Tensor,
                     fill: torch.Tensor) -> torch.Tensor:
    """Put visible tokens back on the full grid, ``fill`` elsewhere.

    Args:
        visible (torch.Tensor): (B, 1 + Lk, C), the class token first, then
            the visible tokens in ``ids_keep`` order.
        ids_restore (torch.Tensor): (B, L), from :func:`random_token_mask`.
        fill (torch.Tensor): (1, 1, C), the value of the hidden positions
            (a learnable mask token, or zeros).

    Returns:
        torch.Tensor: (B, 1 + L, C) in image order, class token first.
    """
    B, n_vis, C = visible.shape
    num_hidden = ids_restore.shape[1] - (n_vis - 1)
    patches = torch.cat(
        [visible[:, 1:], fill.expand(B, num_hidden, C).to(visible.dtype)],
        dim=1)
    patches = gather_tokens(patches, ids_restore)
    return torch.cat([visible[:, :1], patches], dim=1)


def vit_forward_tokens(vit: VisionTransformer,
                       images: torch.Tensor,
                       ids_keep: Optional[torch.Tensor] = None,
                       layer: int = -1) -> torch.Tensor:
    """Run an MMPretrain ViT on all patches or on a subset of them.

    The same arithmetic as ``VisionTransformer.forward`` (position embedding
    added before dropping tokens, as MAE's encoder does), so that with
    ``ids_keep=None`` the result equals the backbone's ``raw`` output.

    Args:
        vit (VisionTransformer): Any MMPretrain ViT with a class token
            (``VisionTransformer``, ``MAEViT``, ``MoCoV3ViT``).
        images (torch.Tensor): (B, 3, H, W).
        ids_keep (torch.Tensor, optional): (B, Lk) indices of the patches to
            keep. Defaults to None (all patches).
        layer (int): Index of the block whose output is returned; the final
            norm is applied after the last block only, as in
            ``VisionTransformer.forward``. Defaults to -1.

    Returns:
        torch.Tensor: (B, 1 + Lk, C), the class token first.
    """
    return vit_forward_layers(vit, images, ids_keep, [layer])[0][0]


def vit_forward_layers(
    vit: VisionTransformer,
    images: torch.Tensor,
    ids_keep: Optional[torch.Tensor] = None,
    layers: Sequence[int] = (-1, ),
    attention: bool = False
) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
    """:func:`vit_forward_tokens` at several blocks in one pass.

    Args:
        vit (VisionTransformer): As :func:`vit_forward_tokens`.
        images (torch.Tensor): (B, 3, H, W).
        ids_keep (torch.Tensor, optional): (B, Lk). Defaults to None.
        layers (Sequence[int]): Block indices; the pass stops after the
            deepest. Defaults to ``(-1, )``.
        attention (bool): Also return the class token's attention over the
            patches in the deepest block of ``layers``. Defaults to False.

    Returns:
        tuple: the (B, 1 + Lk, C) outputs in the order of ``layers``, and
        the (B, Lk) attention (softmax over all tokens, class token's own
        weight dropped, averaged over heads) or None.
    """
    B = images.shape[0]
    x, patch_resolution = vit.patch_embed(images)
    pos_embed = resize_pos_embed(
        vit.pos_embed,
        vit.patch_resolution,
        patch_resolution,
        mode=vit.interpolate_mode,
        num_extra_tokens=vit.num_extra_tokens)
    x = x + pos_embed[:, vit.num_extra_tokens:]
    if ids_keep is not None:
        x = gather_tokens(x, ids_keep)
    cls_token = vit.cls_token + pos_embed[:, :vit.num_extra_tokens]
    x = torch.cat([cls_token.expand(B, -1, -1), x], dim=1)
    x = vit.pre_norm(vit.drop_after_pos(x))
    wanted = [index % vit.num_layers for index in layers]
    outs, attn = {}, None
    for index, block in enumerate(vit.layers[:max(wanted) + 1]):
        if attention and index == max(wanted):
            attn = cls_attention(block, x)[:, vit.num_extra_tokens:]
        x = block(x)
        if index == vit.num_layers - 1 and vit.final_norm:
            x = vit.ln1(x)
        outs[index] = x
    return [outs[index] for index in wanted], attn


def cls_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The class token's attention in an MMPretrain ViT block.

    Args:
        block (nn.Module): A ``TransformerEncoderLayer`` (``ln1`` then a
            ``MultiheadAttention`` with a fused ``qkv``).
        x (torch.Tensor): (B, N, C), the block's input, class token first.

    Returns:
        torch.Tensor: (B, N) attention weights of the class token's query
        over the N keys (softmax, then the mean over heads).
    """
    attn = block.attn
    B, N, _ = x.shape
    qkv = attn.qkv(block.ln1(x)).reshape(B, N, 3, attn.num_heads,
                                         attn.head_dims)
    q, k = qkv[:, :1, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
    logits = q @ k.transpose(-2, -1) * attn.head_dims**-0.5  # (B, h, 1, N)
    return logits.softmax(-1).mean(1)[:, 0].float()


def guided_noise(noise: torch.Tensor, attention: torch.Tensor,
                 num_guided: int) -> torch.Tensor:
    """Sort keys that keep the ``num_guided`` most-attended patches first.

    Used with :func:`random_token_mask`, which keeps the lowest keys: the
    ``num_guided`` patches of highest ``attention`` get keys below every
    random key (in attention order), the others keep their random keys, so
    the rest of the visible patches are drawn uniformly from the others.

    Args:
        noise (torch.Tensor): (B, L) random keys, int64 from
            :func:`keyed_token_noise` or floats in [0, 1).
        attention (torch.Tensor): (B, L) attention weights.
        num_guided (int): Patches picked by attention, at most L.

    Returns:
        torch.Tensor: (B, L), the dtype of ``noise``.
    """
    if num_guided <= 0:
        return noise
    top = attention.float().topk(num_guided, dim=1).indices  # (B, G)
    if noise.dtype == torch.int64:
        low = torch.iinfo(torch.int64).min
    else:
        low = -float(num_guided + 1)
    rank = torch.arange(num_guided, device=noise.device).to(noise.dtype)
    return noise.scatter(1, top, (low + rank).expand(noise.shape[0], -1))
