"""Teachers stay bit-identical through training steps, also under AMP."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmmoma  # noqa: F401

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _model():
    vit = dict(arch=ARCH, img_size=32, patch_size=8)
    model = MODELS.build(
        dict(
            type='MomaAlgorithm',
            backbone=dict(type='mmpretrain.MAEViT', **copy.deepcopy(vit)),
            teachers=dict(
                mocov3=dict(
                    type='mmpretrain.MoCoV3ViT', out_type='raw',
                    **copy.deepcopy(vit)),
                mae=dict(
                    type='mmpretrain.VisionTransformer', out_type='raw',
                    **copy.deepcopy(vit))),
            neck=dict(
                type='MomaNeck', decoder_embed_dims=32, decoder_depth=1,
                decoder_num_heads=2),
            head=dict(type='SmoothL1AlignHead'),
            mask_ratio=0.75))
    model.init_weights()
    return model


@pytest.mark.parametrize('amp', [None, torch.bfloat16, torch.float16],
                         ids=['fp32', 'bf16-autocast', 'fp16-autocast'])
def test_training_steps_leave_teachers_bit_identical(amp):
    torch.manual_seed(0)
    model = _model()
    before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    wrapper = OptimWrapper(
        torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=1e-2,
            weight_decay=0.5))  # decay would move any weight it reached
    model.train()
    student = model.backbone.layers[0].attn.qkv.weight.detach().clone()
    for step in range(3):
        samples = [DataSample(metainfo=dict(sample_idx=i)) for i in range(4)]
        with torch.autocast('cpu', dtype=amp or torch.float32,
                            enabled=amp is not None):
            losses = model.loss(torch.randn(4, 3, 32, 32), samples)
        wrapper.update_params(sum(losses.values()))
    after = model.teachers.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in model.teachers.parameters())
    assert not model.teachers.training
    assert not torch.equal(student, model.backbone.layers[0].attn.qkv.weight)
