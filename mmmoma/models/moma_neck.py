"""MomaNeck: projects student tokens to one teacher's feature space."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer)
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS
from torch import nn

from .utils import unshuffle_tokens

MODES = ('decoder', 'linear', 'mlp')


@MODELS.register_module()
class MomaNeck(BaseModule):
    """Neck of `MOMA <https://arxiv.org/abs/2302.02089>`_, one per teacher.

    ``mode='decoder'`` is an MAE-style feature decoder: visible tokens are
    embedded to ``decoder_embed_dims``, a shared mask token fills the hidden
    positions, a fixed 2D sin-cos position embedding is added, and
    ``decoder_depth`` transformer blocks predict the teacher feature of every
    position, hidden ones included. ``mode='linear'`` and ``mode='mlp'`` are
    light projectors applied to the visible tokens only; hidden positions of
    their output are zeros and must not enter the loss
    (:attr:`predicts_masked` is False).

    Args:
        in_channels (int): Student width Cs.
        out_channels (int): Teacher width Ct.
        patch_resolution (int | tuple): The student's patch grid (h, w),
            needed by the decoder's position embedding. Defaults to 14.
        mode (str): ``'decoder'``, ``'linear'`` or ``'mlp'``.
            Defaults to ``'decoder'``.
        decoder_embed_dims (int): Decoder width. Defaults to 512.
        decoder_depth (int): Decoder blocks. Defaults to 2.
        decoder_num_heads (int): Decoder attention heads. Defaults to 16.
        mlp_ratio (float): FFN width / decoder width. Defaults to 4.
        hidden_channels (int): Hidden width of ``mode='mlp'``.
            Defaults to 2048.
        norm_cfg (dict): Norm layer of the decoder.
            Defaults to ``dict(type='LN', eps=1e-6)``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Xavier-uniform linears and unit LayerNorms (MAE).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        patch_resolution: Union[int, Sequence[int]] = 14,
        mode: str = 'decoder',
        decoder_embed_dims: int = 512,
        decoder_depth: int = 2,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.,
        hidden_channels: int = 2048,
        norm_cfg: dict = dict(type='LN', eps=1e-6),
        init_cfg: Optional[Union[dict, List[dict]]] = [
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'MomaNeck: mode={mode!r} is not supported; '
                             f'allowed: {MODES}.')
        sizes = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            decoder_embed_dims=decoder_embed_dims,
            decoder_num_heads=decoder_num_heads,
            hidden_channels=hidden_channels)
        for key, value in sizes.items():
            if not (isinstance(value, int) and value > 0):
                raise ValueError(
                    f'MomaNeck: {key}={value!r} must be a positive int.')
        if mode == 'decoder' and decoder_embed_dims % decoder_num_heads:
            raise ValueError(
                f'MomaNeck: decoder_embed_dims={decoder_embed_dims} is not '
                f'divisible by decoder_num_heads={decoder_num_heads}.')
        self.mode = mode
        self.in_channels = in_channels
        self.out_channels = out_channels
        if isinstance(patch_resolution, int):
            patch_resolution = (patch_resolution, patch_resolution)
        self.patch_resolution: Tuple[int, int] = tuple(patch_resolution)

        if mode == 'linear':
            self.proj = nn.Linear(in_channels, out_channels)
        elif mode == 'mlp':
            self.proj = nn.Sequential(
                nn.Linear(in_channels, hidden_channels), nn.GELU(),
                nn.Linear(hidden_channels, out_channels))
        else:
            num_patches = self.patch_resolution[0] * self.patch_resolution[1]
            self.embed = nn.Linear(in_channels, decoder_embed_dims)
            self.mask_token = nn.Parameter(
                torch.zeros(1, 1, decoder_embed_dims))
            self.pos_embed = nn.Parameter(
                torch.zeros(1, num_patches + 1, decoder_embed_dims),
                requires_grad=False)
            self.blocks = nn.ModuleList([
                TransformerEncoderLayer(
                    decoder_embed_dims,
                    decoder_num_heads,
                    int(mlp_ratio * decoder_embed_dims),
                    qkv_bias=True,
                    norm_cfg=norm_cfg) for _ in range(decoder_depth)
            ])
            self.norm = build_norm_layer(norm_cfg, decoder_embed_dims)[1]
            self.proj = nn.Linear(decoder_embed_dims, out_channels)
        # Hidden-position outputs of the projectors: constant zeros.
        self.register_buffer(
            'zero_token', torch.zeros(1, 1, out_channels), persistent=False)

    @property
    def predicts_masked(self) -> bool:
        """Whether the output at hidden positions is a real prediction."""
        return self.mode == 'decoder'

    def init_weights(self) -> None:
        """Xavier linears (init_cfg), fixed sin-cos positions, mask token."""
        super().init_weights()
        if self.mode == 'decoder':
            self.pos_embed.data.copy_(
                build_2d_sincos_position_embedding(
                    self.patch_resolution,
                    self.pos_embed.shape[-1],
                    cls_token=True).float())
            nn.init.normal_(self.mask_token, std=.02)

    def forward(self, x: torch.Tensor,
                ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict teacher features on the full token grid.

        Args:
            x (torch.Tensor): (B, 1 + Lk, Cs) student tokens, the class token
                first, then the visible tokens in ``ids_keep`` order.
            ids_restore (torch.Tensor): (B, L), see ``random_token_mask``.

        Returns:
            torch.Tensor: (B, 1 + L, Ct) in image order, class token first.
        """
        if self.mode != 'decoder':
            return unshuffle_tokens(self.proj(x), ids_restore,
                                    self.zero_token)
        x = unshuffle_tokens(self.embed(x), ids_restore, self.mask_token)
        x = x + self.pos_embed.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.proj(self.norm(x))
