"""MaskSampler: the student's masks, keyed by sample and optionally guided
by a teacher's attention."""
from typing import Optional, Tuple

import torch

from .utils import (guided_noise, keyed_token_noise, num_visible_tokens,
                    random_token_mask)


class MaskSampler:
    """Draws the student's masks for :class:`MomaAlgorithm`.

    A sample's mask depends only on ``(seed, step, sample_idx)`` (see
    :func:`~mmmoma.models.utils.keyed_token_noise`); without sample indices
    it comes from the global generator. With a guide (``mask_guide``, after
    MILAN and MaskAlign) the ``num_guided`` patches the teacher's class
    token attends to most are always visible and the rest of the visible
    patches are drawn uniformly.

    Args:
        num_patches (int): L, the student's patches.
        mask_ratio (float): Fraction of the patches hidden.
        guide (dict, optional): A checked ``mask_guide``
            (``dict(teacher=name, random_share=r)``). Defaults to None.
    """

    def __init__(self,
                 num_patches: int,
                 mask_ratio: float,
                 guide: Optional[dict] = None) -> None:
        self.num_patches = num_patches
        self.mask_ratio = mask_ratio
        self.guide = guide
        self.num_guided = 0  # visible patches picked by attention
        if guide is not None:
            num_keep = num_visible_tokens(num_patches, mask_ratio)
            self.num_guided = round(num_keep * (1 - guide['random_share']))

    def __call__(
        self,
        images: torch.Tensor,
        seed: torch.Tensor,
        step: torch.Tensor,
        sample_ids: Optional[torch.Tensor],
        attention: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The masks of a batch.

        Args:
            images (torch.Tensor): (B, 3, H, W).
            seed (torch.Tensor): () int64, the run's mask seed.
            step (torch.Tensor): () int64 key of the step.
            sample_ids (torch.Tensor, optional): (B, ) int64.
            attention (torch.Tensor, optional): (B, L), the guide teacher's
                attention. Defaults to None.

        Returns:
            tuple: ``ids_keep`` (B, Lk), ``ids_restore`` (B, L) and ``mask``
            (B, L), see :func:`~mmmoma.models.utils.random_token_mask`.
        """
        noise = None
        if sample_ids is not None:
            noise = keyed_token_noise(seed, step, sample_ids,
                                      self.num_patches)
        if attention is not None:
            if noise is None:
                noise = torch.rand(images.shape[0], self.num_patches,
                                   device=images.device)
            noise = guided_noise(noise, attention, self.num_guided)
        return random_token_mask(images.shape[0], self.num_patches,
                                 self.mask_ratio, images.device, noise)
