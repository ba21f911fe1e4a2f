"""A crafted pickle in a foreign checkpoint is refused, and runs no code.

The crafted file holds valid weights plus one object that unpickles by
calling ``exec``, which writes a marker file. Every way a foreign checkpoint
enters the project (teacher and student ``init_cfg``, the downstream
``MomaViT``, the converter tools, MMEngine's ``load_from``) must refuse it
with a message naming the argument and the file, and the marker must not
appear. ``--resume`` is tested in test_resume_checks.py.
"""
import json
from pathlib import Path

import pytest
import torch

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmengine.runner import load_checkpoint
from mmmoma.apis import extract_student, official_to_mmpretrain
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS
from reliability_utils import TINY_ARCH, tiny_moma_loading



class Payload:
    """Unpickles by running code that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()', )


def vit_weights() -> dict:
    vit = VisionTransformer(arch=TINY_ARCH, img_size=32, patch_size=8,
                            out_type='raw')
    return vit.state_dict()


def craft(path: Path, marker: Path, legacy: bool = False,
          official: bool = False) -> Path:
    """Valid ViT weights with a code-running object beside them."""
    weights = vit_weights()
    if official:  # the official MAE layout: timm names under 'model'
        weights = {
            'cls_token': weights['cls_token'],
            'pos_embed': weights['pos_embed'],
            'patch_embed.proj.weight':
            weights['patch_embed.projection.weight']
        }
        checkpoint = {'model': weights, 'args': Payload(marker)}
    else:
        checkpoint = {
            'state_dict': {'backbone.' + k: v
                           for k, v in weights.items()},
            'meta': Payload(marker)
        }
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_crafted_checkpoint_runs_code_when_fully_unpickled(tmp_path):
    """The payload is live: a plain unpickling creates the marker."""
    marker = tmp_path / 'marker'
    path = craft(tmp_path / 'crafted.pth', marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('where', [
    'teachers.mae.init_cfg', 'teachers.mocov3.init_cfg', 'backbone.init_cfg'
])
def test_moma_refuses_crafted_checkpoint(where, legacy, tmp_path):
    marker = tmp_path / 'marker'
    path = craft(tmp_path / 'crafted.pth', marker, legacy=legacy)
    model = tiny_moma_loading(where, path)
    with pytest.raises(ValueError) as info:
        model.init_weights()
    message = str(info.value)
    assert f'{where}.checkpoint={str(path)!r}' in message
    assert 'holds pickled Python objects (exec)' in message
    assert 'weights_only=True' in message and 'Allowed' in message
    assert not marker.exists()


def test_downstream_student_refuses_crafted_checkpoint(tmp_path):
    marker = tmp_path / 'marker'
    path = craft(tmp_path / 'crafted.pth', marker)
    backbone = MODELS.build(
        dict(
            type='MomaViT', arch=TINY_ARCH, img_size=32, patch_size=8,
            init_cfg=dict(
                type='Pretrained', checkpoint=str(path),
                prefix='backbone.')))
    with pytest.raises(ValueError, match=r'model\.backbone\.init_cfg\.'
                       r'checkpoint=.*holds pickled Python objects \(exec\)'):
        backbone.init_weights()
    assert not marker.exists()


def test_converter_refuses_crafted_checkpoint(tmp_path):
    marker = tmp_path / 'marker'
    src = craft(tmp_path / 'mae_pretrain.pth', marker, official=True)
    dst = tmp_path / 'out.pth'
    with pytest.raises(SystemExit) as info:
        official_to_mmpretrain.main([
            '--format', 'mae', '--arch', json.dumps(TINY_ARCH), '--img-size',
            '32', '--patch-size', '8', str(src), str(dst)])
    message = str(info.value)
    assert f'SRC {str(src)!r}' in message
    assert 'holds pickled Python objects (exec)' in message
    assert not marker.exists() and not dst.exists()


def test_extract_student_refuses_crafted_checkpoint(tmp_path):
    marker = tmp_path / 'marker'
    src = craft(tmp_path / 'epoch_1.pth', marker)
    dst = tmp_path / 'student.pth'
    with pytest.raises(SystemExit) as info:
        extract_student.main([str(src), str(dst)])
    message = str(info.value)
    assert f'checkpoint={str(src)!r}' in message
    assert 'weights_only=True' in message
    assert 'Unsupported global: GLOBAL exec' in message
    assert not marker.exists() and not dst.exists()


def test_load_from_refuses_crafted_checkpoint(tmp_path):
    """MMEngine's loader (``load_from``, tools/test.py, kNN) stays
    weights_only outside ``Runner.resume``."""
    marker = tmp_path / 'marker'
    path = craft(tmp_path / 'crafted.pth', marker)
    vit = VisionTransformer(arch=TINY_ARCH, img_size=32, patch_size=8)
    with pytest.raises(Exception, match='Unsupported global: GLOBAL exec'):
        load_checkpoint(vit, str(path), map_location='cpu')
    assert not marker.exists()
