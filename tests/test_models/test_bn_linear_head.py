"""BNLinearHead is BatchNorm + one 1x1 convolution per token, and the
linear-probe config trains it on a frozen backbone that gets no gradient."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

import mmmoma  # noqa: F401
from mmmoma.models import BNLinearHead

LINEAR = ('configs/study/'
          'linear_vit-tiny-p4_moma-pre_1xb16-300i_fmnist-mosaics-84x84.py')


def test_logits_are_a_linear_map_of_the_batch_normed_tokens():
    torch.manual_seed(0)
    head = BNLinearHead(in_channels=8, channels=8, num_classes=3,
                        dropout_ratio=0.0)
    head.eval()
    head.bn.running_mean.normal_()
    head.bn.running_var.uniform_(0.5, 2.0)
    head.bn.weight.data.normal_()
    head.bn.bias.data.normal_()
    feats = torch.randn(2, 8, 5, 6)  # (B, C, h, w)
    logits = head([feats])
    assert logits.shape == (2, 3, 5, 6)
    bn = head.bn
    normed = ((feats - bn.running_mean[:, None, None]) /
              torch.sqrt(bn.running_var[:, None, None] + bn.eps) *
              bn.weight[:, None, None] + bn.bias[:, None, None])
    weight = head.conv_seg.weight[:, :, 0, 0]  # (classes, C)
    expected = (torch.einsum('kc,bchw->bkhw', weight, normed) +
                head.conv_seg.bias[:, None, None])
    torch.testing.assert_close(logits, expected)


def test_several_maps_are_resized_and_concatenated():
    head = BNLinearHead(in_channels=[4, 6], channels=10, in_index=[0, 2],
                        num_classes=3)
    maps = [torch.randn(2, 4, 8, 8), torch.randn(2, 5, 4, 4),
            torch.randn(2, 6, 4, 4)]
    assert head(maps).shape == (2, 3, 8, 8)


def test_channels_other_than_the_input_fail_naming_both():
    with pytest.raises(ValueError, match=r'channels=64 .*in_channels=128'):
        BNLinearHead(in_channels=128, channels=64, num_classes=3)


def test_linear_probe_config_trains_the_head_only():
    """Backbone (the study's ViT, random) frozen: no parameter needs or
    gets a gradient, it stays in eval mode; the head gets gradients and
    the logits, upsampled in the loss, cover the 84x84 labels."""
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile(LINEAR)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    assert not model.with_neck and not model.with_auxiliary_head
    assert all(not m.training for m in model.backbone.modules())
    assert model.decode_head.training
    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            gt_sem_seg=PixelData(data=torch.randint(0, 11, (1, 84, 84))))
        sample.set_metainfo(dict(img_shape=(84, 84), pad_shape=(84, 84)))
        samples.append(sample)
    inputs = torch.randn(2, 3, 84, 84)
    feats = model.extract_feat(inputs)
    assert [tuple(f.shape) for f in feats] == [(2, 128, 21, 21)]
    assert not feats[0].requires_grad  # no graph through the backbone
    losses = model.loss(inputs, samples)
    losses['decode.loss_ce'].backward()
    for name, param in model.backbone.named_parameters():
        assert not param.requires_grad and param.grad is None, name
    for name, param in model.decode_head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
