"""BNLinearHead: the linear segmentation probe of DINOv2 (BN + 1x1 conv)."""
from typing import List, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


@MODELS.register_module()
class BNLinearHead(BaseDecodeHead):
    """A linear probe on patch tokens: BatchNorm, then a 1x1 convolution.

    The linear segmentation evaluation of `DINOv2
    <https://arxiv.org/abs/2304.07193>`_ (its ``BNHead``; also RADIO's):
    the frozen backbone's patch tokens as a feature map, one BatchNorm,
    then one linear layer per token (``conv_seg``, a 1x1 convolution); the
    logits are upsampled bilinearly to the label size by
    ``BaseDecodeHead``'s loss and prediction. Several maps (``in_index`` a list) are resized to the first
    one's size and concatenated first (DINOv2's multi-layer variant).
    MMSegmentation has no such head: ``FCNHead(num_convs=0)`` is the
    1x1 convolution without the BatchNorm.

    Args:
        in_channels (int | Sequence[int]): Channels of the selected map(s).
        channels (int): Channels into ``conv_seg``: the sum of
            ``in_channels``.
        in_index (int | Sequence[int]): Which backbone output(s). Defaults
            to -1 (the last).
        norm_cfg (dict, optional): The norm layer. Defaults to None
            (``dict(type='BN')``; DINOv2 uses SyncBN across processes).
        **kwargs: The other arguments of ``BaseDecodeHead``
            (``num_classes``, ``dropout_ratio``, ``loss_decode``, ...).
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]],
                 channels: int,
                 in_index: Union[int, Sequence[int]] = -1,
                 **kwargs) -> None:
        several = isinstance(in_index, (list, tuple))
        total = sum(in_channels) if several else in_channels
        if channels != total:
            raise ValueError(
                f'BNLinearHead: channels={channels!r} must be the sum of '
                f'in_channels={in_channels!r}, {total}: the head is linear, '
                'with no projection before conv_seg.')
        super().__init__(
            in_channels=in_channels,
            channels=channels,
            in_index=in_index,
            input_transform='resize_concat' if several else None,
            **kwargs)
        self.bn = build_norm_layer(self.norm_cfg or dict(type='BN'),
                                   channels)[1]

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Per-token logits.

        Args:
            inputs (list[torch.Tensor]): Backbone maps, each (B, C, h, w).

        Returns:
            torch.Tensor: Logits (B, num_classes, h, w) at the map's size.
        """
        feats = self._transform_inputs(inputs)  # (B, channels, h, w)
        return self.cls_seg(self.bn(feats))
