"""FrozenTeachers on its own: frozen, eval mode, the ViT's own tokens as
targets, zeros where no target exists, teacher keys out of checkpoints."""
import pytest
import torch
from torch import nn

import mmmoma  # noqa: F401
from mmmoma.models.frozen_teachers import (FrozenTeachers,
                                           keep_out_of_checkpoints,
                                           resample_map)
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


def test_resample_map_by_hand():
    """Bilinear, align_corners=False, 2 -> 4 tokens per side: output token
    centres at -0.25, 0.25, 0.75, 1.25 input tokens (clamped at the edges),
    so a row [0, 1] becomes [0, 0.25, 0.75, 1]; separable in 2D."""
    feat = torch.tensor([[0., 1.], [2., 3.]]).view(1, 1, 2, 2)
    out = resample_map(feat, (4, 4))
    row = torch.tensor([0., .25, .75, 1.])
    col = torch.tensor([0., .5, 1.5, 2.])  # [0, 2] down a column
    assert torch.allclose(out[0, 0], col[:, None] + row[None, :])
    # area: 4 -> 2 tokens per side is the mean of each 2 x 2 block
    down = resample_map(out, (2, 2), 'area')
    assert torch.allclose(down[0, 0, 0, 0], out[0, 0, :2, :2].mean())


def test_non_vit_teacher_map_resampled_or_refused():
    class MapTeacher(nn.Module):
        out_channels = 3

        def forward(self, x):  # (B, 3, 2, 2) whatever the student's grid
            return torch.nn.functional.adaptive_avg_pool2d(x, 2)

    teachers = FrozenTeachers({}, (4, 4))
    teachers['map'] = MapTeacher()
    images = torch.randn(2, 3, 32, 32)
    target = teachers.targets('map', images)
    assert target.shape == (2, 17, 3)
    assert torch.equal(target[:, 0], torch.zeros(2, 3))  # no class token
    want = resample_map(teachers.map(images), (4, 4))
    assert torch.allclose(target[:, 1:], want.flatten(2).transpose(1, 2))
    strict = FrozenTeachers({}, (4, 4), resample=None)
    strict['map'] = MapTeacher()
    with pytest.raises(RuntimeError, match='teacher_resample=None'):
        strict.targets('map', images)


def test_dinov2_style_teacher_loads_a_larger_position_grid(tmp_path):
    """As the DINOv2 config does: a patch-14 teacher with layer scale whose
    checkpoint was saved at another image size (7 x 7 positions) loads
    strictly at 56 px (4 x 4 tokens) and is resampled to a 7 x 7 student
    grid."""
    arch = dict(ARCH, embed_dims=32)
    vit = dict(type='mmpretrain.VisionTransformer', arch=arch, patch_size=14,
               layer_scale_init_value=1e-5, out_type='raw')
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    source = MODELS.build(dict(vit, img_size=98))
    path = tmp_path / 'dinov2_like.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in source.state_dict().items()}},
               path)
    teachers = FrozenTeachers(
        dict(dinov2=dict(vit, img_size=56, init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))),
        (7, 7))
    teachers.load_weights()
    assert torch.equal(teachers.dinov2.layers[0].ffn.gamma2.weight,
                       source.layers[0].ffn.gamma2.weight)
    target = teachers.targets('dinov2', torch.randn(2, 3, 56, 56))
    assert target.shape == (2, 1 + 49, 32)
