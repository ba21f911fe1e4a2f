"""FrozenTeachers on its own: frozen, eval mode, the ViT's own tokens as
targets, zeros where no target exists, teacher keys out of checkpoints."""
import pytest
import torch
from torch import nn

import mmmoma  # noqa: F401
from mmmoma.models.frozen_teachers import (FrozenTeachers,
                                           keep_out_of_checkpoints)
from mmmoma.models.utils import random_token_mask, vit_forward_tokens

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
VIT = dict(arch=ARCH, img_size=32, patch_size=8, out_type='raw')


def build(**kwargs):
    torch.manual_seed(0)
    teachers = FrozenTeachers(
        dict(mae=dict(type='mmpretrain.VisionTransformer', **VIT)), (4, 4),
        **kwargs)
    teachers.load_weights()
    return teachers


def test_frozen_and_always_in_eval_mode():
    teachers = build()
    teachers.train()
    assert not teachers.training
    assert not any(m.training for m in teachers.modules())
    assert not any(p.requires_grad for p in teachers.parameters())


def test_targets_are_the_teachers_tokens_without_grad():
    teachers = build()
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    target = teachers.targets('mae', images)
    with torch.no_grad():
        want = vit_forward_tokens(teachers.mae, images)
    assert target.shape == (2, 17, 32) and target.dtype == torch.float32
    assert not target.requires_grad
    assert torch.equal(target, want)
    assert teachers.feature_dims('mae') == 32
    assert teachers.has_cls_token('mae')


def test_masked_input_gives_zeros_at_hidden_patches():
    teachers = build(masked_input=True)
    images = torch.randn(2, 3, 32, 32)
    ids_keep, ids_restore, mask = random_token_mask(2, 16, 0.75, 'cpu')
    target = teachers.targets('mae', images, ids_keep, ids_restore)
    hidden = target[:, 1:][mask.bool()]
    assert torch.equal(hidden, torch.zeros_like(hidden))
    visible = target[:, 1:][~mask.bool()]
    assert visible.abs().sum() > 0


def test_inference_mode_and_bf16_give_ordinary_float32_tensors():
    ref = build()
    fast = build(dtype='bfloat16', inference_mode=True)
    assert all(p.dtype == torch.bfloat16 for p in fast.parameters())
    images = torch.randn(2, 3, 32, 32)
    got = fast.targets('mae', images)
    assert got.dtype == torch.float32 and not got.is_inference()
    want = ref.targets('mae', images)
    assert torch.allclose(got, want, rtol=0.05, atol=0.05)


def test_bad_dtype_names_the_option():
    with pytest.raises(ValueError, match="teacher_dtype='int8' is not"):
        build(dtype='int8')


def test_keep_out_of_checkpoints():
    owner = nn.Module()
    owner.student = nn.Linear(2, 2)
    owner.teachers = build()
    keep_out_of_checkpoints(owner)
    state = owner.state_dict()
    assert set(state) == {'student.weight', 'student.bias'}
    assert owner.teachers.state_dict()  # the teachers' own dict is whole
    result = owner.load_state_dict(state, strict=True)
    assert result.missing_keys == []
