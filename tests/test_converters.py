"""Tests for mmmoma/converters.py and its CLI.

Tiny timm ViTs stand in for the MAE and MoCo v3 encoders (both official code
bases build on timm's VisionTransformer); their weights are saved in the
official file layouts and the converted MMPretrain backbone must reproduce
timm's features.
"""
import argparse
import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import mmmoma  # noqa: F401  (must precede mmpretrain)
from mmmoma import converters
from mmmoma.apis import official_to_mmpretrain
from mmengine.runner import load_checkpoint
from mmpretrain.models import MoCoV3ViT, VisionTransformer
from timm.models.vision_transformer import VisionTransformer as TimmViT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, 'tools', 'model_converters',
                   'official_to_mmpretrain.py')
ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=256)
SIZE = dict(img_size=32, patch_size=8)


def _timm_vit(num_classes: int = 0) -> TimmViT:
    torch.manual_seed(0)
    vit = TimmViT(img_size=32, patch_size=8, embed_dim=64, depth=2,
                  num_heads=2, mlp_ratio=4., qkv_bias=True,
                  num_classes=num_classes)
    with torch.no_grad():  # random norms and biases too, not timm's init
        for p in vit.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return vit.eval()


def _mlp(dims, last_bn_affine=True) -> nn.Sequential:
    """MoCo v3's projector/predictor layout: Linear, BN, ReLU, ..."""
    layers = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out, bias=False))
        last = i == len(dims) - 2
        if not last:
            layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
        elif last_bn_affine is not None:
            layers.append(nn.BatchNorm1d(d_out, affine=last_bn_affine))
    return nn.Sequential(*layers)


def _mae_file(path, vit, extra=None) -> str:
    weights = dict(vit.state_dict(), **(extra or {}))
    torch.save({'model': weights}, path)
    return str(path)


def _mocov3_file(path, vit) -> str:
    moco = nn.Module()
    moco.base_encoder = copy.deepcopy(vit)
    moco.base_encoder.head = _mlp([64, 128, 128, 32], last_bn_affine=False)
    moco.momentum_encoder = copy.deepcopy(moco.base_encoder)
    moco.predictor = _mlp([32, 128, 32], last_bn_affine=None)
    optimizer = torch.optim.AdamW(moco.parameters(), betas=(0.9, 0.95))
    # One step fills the optimizer state; only the predictor moves.
    moco.predictor[0].weight.grad = torch.ones_like(moco.predictor[0].weight)
    optimizer.step()
    # DistributedDataParallel adds `module.`; main_moco.py's save_checkpoint.
    torch.save({
        'epoch': 300, 'arch': 'vit_small',
        'state_dict': {'module.' + k: v for k, v in moco.state_dict().items()},
        'optimizer': optimizer.state_dict(),
        'scaler': {'scale': 65536.0, 'growth_factor': 2.0,
                   'backoff_factor': 0.5, 'growth_interval': 2000,
                   '_growth_tracker': 0},
    }, path)
    return str(path)


def _assert_same_features(vit, backbone):
    """All tokens before and after the final norm, against timm."""
    seen = {}
    vit.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(timm=o))
    backbone.layers[-1].register_forward_hook(
        lambda m, i, o: seen.update(mm=o))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = vit.forward_features(x)
        (out, ) = backbone(x)
    assert out.shape == expected.shape == (2, 17, 64)
    torch.testing.assert_close(seen['mm'], seen['timm'], atol=1e-5, rtol=0)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_mae_reproduces_timm_features(tmp_path):
    vit = _timm_vit()
    extra = {'mask_token': torch.zeros(1, 1, 64),
             'decoder_embed.weight': torch.zeros(32, 64)}
    src = _mae_file(tmp_path / 'mae.pth', vit, extra)
    dropped = []
    state_dict = converters.convert_official(
        converters.load_official(src), 'mae', dropped)
    assert sorted(dropped) == ['decoder_embed.weight', 'mask_token']
    backbone = converters.build_backbone(state_dict, ARCH, out_type='raw',
                                         **SIZE)
    _assert_same_features(vit, backbone)


def test_mocov3_reproduces_timm_features(tmp_path):
    vit = _timm_vit()
    src = _mocov3_file(tmp_path / 'mocov3.pth.tar', vit)
    dropped = []
    state_dict = converters.convert_official(
        converters.load_official(src), 'mocov3', dropped)
    assert set(state_dict) == set(VisionTransformer(ARCH, **SIZE).state_dict())
    assert all(k.startswith(converters.DROP_PREFIXES['mocov3'])
               for k in dropped)
    assert {k.split('.')[1] for k in dropped} == {
        'base_encoder', 'momentum_encoder', 'predictor'}
    backbone = converters.build_backbone(state_dict, ARCH, out_type='raw',
                                         **SIZE)
    _assert_same_features(vit, backbone)
    # MMPretrain's MoCoV3ViT only changes init and freezing: same features.
    mocov3_vit = MoCoV3ViT(arch=ARCH, out_type='raw', **SIZE)
    mocov3_vit.load_state_dict(state_dict, strict=True)
    mocov3_vit.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(mocov3_vit(x), backbone(x), atol=0, rtol=0)


def test_cli_output_loads_in_mmpretrain(tmp_path):
    vit = _timm_vit()
    src = _mocov3_file(tmp_path / 'mocov3.pth.tar', vit)
    dst = str(tmp_path / 'out' / 'vit.pth')
    os.makedirs(os.path.dirname(dst))
    # deit-s is 384-d: the strict load must refuse, name a mis-shaped key and
    # leave no file behind.
    with pytest.raises(SystemExit) as err:
        official_to_mmpretrain.main([
            '--format', 'mocov3', '--arch', 'deit-s', '--img-size', '32',
            '--patch-size', '8', src, dst])
    assert 'cls_token: file (1, 1, 64) vs model (1, 1, 384)' in str(
        err.value.code)
    assert os.listdir(os.path.dirname(dst)) == []

    result = subprocess.run(
        [sys.executable, CLI, '--format', 'mocov3', '--arch', json.dumps(ARCH),
         '--img-size', '32', '--patch-size', '8', src, dst],
        capture_output=True, text=True, cwd=str(tmp_path))  # no PYTHONPATH
    assert result.returncode == 0, result.stderr
    assert 'converted 30 tensors' in result.stdout
    assert 'module.momentum_encoder.* (' in result.stdout
    assert 'strict load into mmpretrain.VisionTransformer: passed' in (
        result.stdout)

    checkpoint = torch.load(dst, weights_only=True)
    assert checkpoint['meta']['source_format'] == 'mocov3'
    assert all(k.startswith('backbone.') for k in checkpoint['state_dict'])
    strict = VisionTransformer(ARCH, out_type='raw', **SIZE)
    strict.eval()  # BaseBackbone.train() returns None
    load_checkpoint(strict, dst, map_location='cpu', strict=True,
                    revise_keys=[(r'^backbone\.', '')])
    _assert_same_features(vit, strict)
    pretrained = VisionTransformer(
        ARCH, out_type='raw', **SIZE,
        init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'))
    pretrained.init_weights()
    pretrained.eval()
    _assert_same_features(vit, pretrained)


def test_wrong_format_is_refused_with_a_clear_message(tmp_path):
    vit = _timm_vit()
    mocov3 = torch.load(_mocov3_file(tmp_path / 'm.pth.tar', vit),
                        weights_only=True)
    with pytest.raises(ValueError) as err:
        converters.convert_official(mocov3, 'mae')
    message = str(err.value)
    for part in ("--format/fmt='mae'", "'model'", "'state_dict'", 'mocov3'):
        assert part in message
    mae = {'model': vit.state_dict()}
    with pytest.raises(ValueError, match=r"fmt='mocov3'.*'model'"):
        converters.convert_official(mae, 'mocov3')
    with pytest.raises(ValueError, match=r"one of \('mae', 'mocov3'\), "
                       r"got 'moco'"):
        converters.convert_official(mae, 'moco')
    fine_tuned = {'model': _timm_vit(num_classes=10).state_dict()}
    with pytest.raises(ValueError, match='fine-tuned'):
        converters.convert_official(fine_tuned, 'mae')
    with pytest.raises(SystemExit):  # argparse `choices`
        official_to_mmpretrain.parse_args(
            ['--format', 'moco', '--arch', 'b', 'a', 'b'])


def test_missing_unexpected_and_misshaped_keys_are_named():
    weights = _timm_vit().state_dict()
    del weights['blocks.1.mlp.fc2.bias']
    weights['blocks.0.ls1.gamma'] = torch.ones(64)
    weights['pos_embed'] = torch.zeros(1, 10, 64)
    state_dict = converters.convert_official({'model': weights}, 'mae')
    with pytest.raises(ValueError) as err:
        converters.build_backbone(state_dict, ARCH, **SIZE)
    message = str(err.value)
    assert "missing (1): ['layers.1.ffn.layers.1.bias']" in message
    assert "unexpected (1): ['layers.0.ls1.gamma']" in message
    assert 'pos_embed: file (1, 10, 64) vs model (1, 17, 64)' in message
    with pytest.raises(ValueError, match=r"--arch/arch must be .* got 'xl'"):
        converters.build_backbone(state_dict, 'xl')


def test_bad_source_files_fail_clearly(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    with pytest.raises(ValueError, match='is not a PyTorch checkpoint'):
        converters.load_official(str(text))
    with pytest.raises(ValueError, match='does not exist'):
        converters.load_official(str(tmp_path / 'missing.pth'))
    # MAE's training checkpoints pickle their argparse arguments.
    unsafe = tmp_path / 'checkpoint-799.pth'
    torch.save({'model': {}, 'args': argparse.Namespace(lr=1.)}, unsafe)
    with pytest.raises(ValueError, match=r'argparse\.Namespace.*weights_only'):
        converters.load_official(str(unsafe))
    with pytest.raises(SystemExit) as err:
        official_to_mmpretrain.main(['--format', 'mae', '--arch', 'b',
                                     str(text), str(tmp_path / 'out.pth')])
    assert f"SRC {str(text)!r} is not a PyTorch checkpoint" in str(
        err.value.code)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    dst = tmp_path / 'vit.pth'
    dst.write_bytes(b'old')

    def broken_save(obj, f):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(converters.torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'):
        converters.save_mmpretrain({'cls_token': torch.zeros(1)}, str(dst), {})
    assert dst.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['vit.pth']
