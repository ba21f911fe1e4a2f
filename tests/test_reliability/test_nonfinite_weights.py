"""Weights with NaN or Inf are refused when they are read, naming the tensor.

A teacher or student ``Pretrained`` checkpoint, the downstream ``MomaViT``
and the two converters (official MAE / MoCo v3 files, the student of a
MOMA checkpoint) are given one NaN and one Inf; each must stop at load
with the file and both tensors named, and write nothing. The control: the
same file without them loads.
"""
import copy
from pathlib import Path

import pytest
import torch

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import extract_student, official_to_mmpretrain
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS
from reliability_utils import TINY_MOMA, TINY_VIT, tiny_moma_loading

NAN_AT, INF_AT = 'layers.0.attn.qkv.weight', 'ln1.bias'


def vit_state(poison: bool) -> dict:
    torch.manual_seed(0)
    state = VisionTransformer(out_type='raw', **TINY_VIT).state_dict()
    if poison:
        state[NAN_AT][3, 1] = float('nan')
        state[INF_AT][0] = float('-inf')
    return state


def runner_style(path: Path, poison: bool) -> Path:
    """A checkpoint in MMPretrain's layout (``backbone.`` prefix)."""
    state = {'backbone.' + k: v for k, v in vit_state(poison).items()}
    torch.save({'state_dict': state, 'meta': {'epoch': 1}}, path)
    return path


def official_mae(path: Path, poison: bool) -> Path:
    """The keys an official MAE file is recognised by, in timm names."""
    state = vit_state(False)
    weights = {
        'cls_token': state['cls_token'],
        'pos_embed': state['pos_embed'],
        'patch_embed.proj.weight': state['patch_embed.projection.weight'],
    }
    if poison:
        weights['patch_embed.proj.weight'][0, 0, 0, 0] = float('nan')
        weights['cls_token'][0, 0, 5] = float('inf')
    torch.save({'model': weights}, path)
    return path


def assert_names_both(message: str, path: Path) -> None:
    assert repr(str(path)) in message
    assert 'holds weights with NaN or Inf' in message, message
    assert f'{NAN_AT} (1 NaN, 0 Inf of 3072 values)' in message
    assert f'{INF_AT} (0 NaN, 1 Inf of 32 values)' in message
    assert 'Allowed: finite weights only' in message


@pytest.mark.parametrize('where', [
    'teachers.mae.init_cfg', 'teachers.mocov3.init_cfg', 'backbone.init_cfg'
])
@pytest.mark.parametrize('poison', [True, False], ids=['nan-inf', 'control'])
def test_moma_refuses_nonfinite_pretrained_weights(where, poison, tmp_path):
    path = runner_style(tmp_path / 'weights.pth', poison)
    model = tiny_moma_loading(where, path)
    if not poison:
        model.init_weights()  # the same file, finite, loads
        return
    with pytest.raises(ValueError) as info:
        model.init_weights()
    message = str(info.value)
    assert message.startswith(f"{where}.checkpoint={str(path)!r} (under "
                              f"{where}.prefix='backbone.')"), message
    assert_names_both(message, path)


def test_official_format_teacher_names_the_converted_tensor(tmp_path):
    path = official_mae(tmp_path / 'mae_pretrain.pth', poison=True)
    cfg = copy.deepcopy(TINY_MOMA)
    cfg['teachers']['mae']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), format='mae')
    with pytest.raises(ValueError) as info:
        MODELS.build(cfg).init_weights()
    message = str(info.value)
    assert f"teachers.mae.init_cfg.checkpoint={str(path)!r} (format='mae'" in (
        message)
    assert 'cls_token (0 NaN, 1 Inf of 32 values)' in message
    assert 'patch_embed.projection.weight (1 NaN, 0 Inf' in message


def test_downstream_backbone_refuses_nonfinite_weights(tmp_path):
    path = runner_style(tmp_path / 'student.pth', poison=True)
    backbone = MODELS.build(
        dict(type='MomaViT', **TINY_VIT,
             init_cfg=dict(type='Pretrained', checkpoint=str(path),
                           prefix='backbone.')))
    with pytest.raises(ValueError) as info:
        backbone.init_weights()
    assert_names_both(str(info.value), path)


@pytest.mark.parametrize('poison', [True, False], ids=['nan-inf', 'control'])
def test_official_converter_refuses_nonfinite_weights(poison, tmp_path):
    src = official_mae(tmp_path / 'mae_pretrain.pth', poison)
    dst = tmp_path / 'out.pth'
    argv = ['--format', 'mae', '--arch', '{"embed_dims": 32, "num_layers": '
            '2, "num_heads": 2, "feedforward_channels": 64}', '--img-size',
            '32', '--patch-size', '8', str(src), str(dst)]
    with pytest.raises(SystemExit) as info:
        official_to_mmpretrain.main(argv)
    message = str(info.value)
    if not poison:  # three keys only: the strict load fails, not the check
        assert 'NaN' not in message and 'missing' in message
        return
    assert f"SRC {str(src)!r} (format 'mae'" in message
    assert 'holds weights with NaN or Inf' in message
    assert 'cls_token (0 NaN, 1 Inf of 32 values)' in message
    assert not dst.exists()


def test_extract_student_refuses_nonfinite_weights(tmp_path):
    src = runner_style(tmp_path / 'epoch_1.pth', poison=True)
    dst = tmp_path / 'student.pth'
    with pytest.raises(SystemExit) as info:
        extract_student.main([str(src), str(dst)])
    message = str(info.value)
    assert f"checkpoint={str(src)!r} (under --prefix='backbone.')" in message
    assert_names_both(message, src)
    assert not dst.exists()
    # the control: the finite checkpoint is extracted
    runner_style(src, poison=False)
    extract_student.main([str(src), str(dst)])
    assert dst.exists()
