"""SmoothL1AlignHead: smooth L1 between student predictions and targets."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .target_norm import TARGET_NORMS, TargetNorm

POSITIONS = ('masked', 'visible', 'all')
LOSS_TYPES = ('smooth_l1', 'mse', 'cosine')


@MODELS.register_module()
class SmoothL1AlignHead(BaseModule):
    """Feature alignment loss of `MOMA <https://arxiv.org/abs/2302.02089>`_.

    Normalises the teacher features, then averages the smooth L1 distance to
    the projected student features over the chosen token positions (each
    token counts once, its C channels averaged). ``loss_type`` swaps the
    distance for an ablation: ``'mse'`` (squared error, channels averaged)
    or ``'cosine'`` (``1 - cos`` per token).

    Args:
        beta (float): Smooth L1 threshold between the L2 and L1 regimes.
            Defaults to 1.0.
        target_norm (str): ``'layer_norm'`` (per token, no affine; the
            paper), ``'none'``, or a standardisation with data statistics:
            ``'channel'``, ``'position'`` or ``'phi_s'`` (see
            :class:`TargetNorm`). Defaults to ``'layer_norm'``.
        target_stats (str): Statistics of those: ``'ema'`` (updated every
            training step) or ``'fixed'`` (a one-pass estimate before
            training by ``TargetStatsHook``). Defaults to ``'ema'``.
        target_momentum (float): EMA weight of a batch. Defaults to 0.01.
        target_refresh_interval (int): ``'phi_s'`` with ``'ema'``: recompute
            the transform every N steps. Defaults to 1.
        in_channels (int, optional): Teacher width C, for the statistics;
            filled in by MomaAlgorithm. Defaults to None.
        num_tokens (int, optional): 1 + L, for ``'position'``; filled in by
            MomaAlgorithm. Defaults to None.
        positions (str): Patch positions in the loss: ``'masked'``,
            ``'visible'`` or ``'all'``. Defaults to ``'all'``.
        with_cls_token (bool): Whether the class token enters the loss.
            Defaults to True.
        loss_type (str): Per-token distance: ``'smooth_l1'`` (the paper),
            ``'mse'`` or ``'cosine'``. Defaults to ``'smooth_l1'``.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 beta: float = 1.0,
                 target_norm: str = 'layer_norm',
                 positions: str = 'all',
                 with_cls_token: bool = True,
                 loss_type: str = 'smooth_l1',
                 target_stats: str = 'ema',
                 target_momentum: float = 0.01,
                 target_refresh_interval: int = 1,
                 in_channels: Optional[int] = None,
                 num_tokens: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(
                f'SmoothL1AlignHead: beta={beta!r} must be a number > 0.')
        if positions not in POSITIONS:
            raise ValueError(
                f'SmoothL1AlignHead: positions={positions!r} is not '
                f'supported; allowed: {POSITIONS}.')
        if loss_type not in LOSS_TYPES:
            raise ValueError(
                f'SmoothL1AlignHead: loss_type={loss_type!r} is not '
                f'supported; allowed: {LOSS_TYPES}.')
        self.beta = beta
        self.loss_type = loss_type
        self.target_norm = target_norm
        self.norm = TargetNorm(
            target_norm,
            channels=in_channels,
            num_tokens=num_tokens,
            stats=target_stats,
            momentum=target_momentum,
            refresh_interval=target_refresh_interval)
        self.positions = positions
        self.with_cls_token = with_cls_token

    def select(self, mask: torch.Tensor) -> torch.Tensor:
        """Positions that enter the loss.

        Args:
            mask (torch.Tensor): (B, L), 1 for a masked patch.

        Returns:
            torch.Tensor: (B, 1 + L) bool, the class token first.
        """
        masked = mask.bool()
        if self.positions == 'masked':
            patches = masked
        elif self.positions == 'visible':
            patches = ~masked
        else:
            patches = torch.ones_like(masked)
        cls = torch.full_like(masked[:, :1], self.with_cls_token)
        return torch.cat([cls, patches], dim=1)

    def loss(self,
             pred: torch.Tensor,
             target: torch.Tensor,
             mask: torch.Tensor,
             valid: Optional[torch.Tensor] = None,
             per_sample: bool = False) -> torch.Tensor:
        """Smooth L1 (or ``loss_type``) of ``pred`` to normalised ``target``.

        In training, a statistics norm first updates its statistics with the
        batch (``target_stats='ema'``).

        Args:
            pred (torch.Tensor): (B, 1 + L, C) student predictions.
            target (torch.Tensor): (B, 1 + L, C) teacher features; no
                gradient flows back to them.
            mask (torch.Tensor): (B, L), 1 for a patch hidden from the
                student.
            valid (torch.Tensor, optional): (B, 1 + L) bool, positions where
                both a prediction and a target exist. Defaults to None (all).
            per_sample (bool): Return each sample's loss (its tokens
                averaged) instead of the batch's. Defaults to False.

        Returns:
            torch.Tensor: The scalar loss (every kept token counts once), or
            (B, ) with ``per_sample``.
        """
        # The teachers are frozen: no gradient may reach them through their
        # targets, even when a caller passes a target that requires grad.
        target = self.norm(
            target.detach().float(), valid, update=self.training)
        if self.loss_type == 'cosine':
            per_token = 1 - F.cosine_similarity(pred.float(), target, dim=-1)
        elif self.loss_type == 'mse':
            per_token = F.mse_loss(
                pred.float(), target, reduction='none').mean(-1)
        else:
            per_token = F.smooth_l1_loss(
                pred.float(), target, reduction='none',
                beta=self.beta).mean(-1)
        keep = self.select(mask)
        if valid is not None:
            keep = keep & valid
        keep = keep.to(per_token.dtype)
        if per_sample:
            return (per_token * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return (per_token * keep).sum() / keep.sum().clamp(min=1.0)
