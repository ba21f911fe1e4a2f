"""Feature maps (mmmoma.apis.visualize_features): PCA and cosine against
hand computations, then the PNGs of a tiny MOMA model."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.apis.visualize_features import (cosine_map, load_model, main,
                                            pca_rgb, principal_components)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'tests/data/configs/moma_tiny_cpu.py'

# Six points on the axes: variances 18, 8 and 2 (x 6) along x, y, z, so the
# principal components are the axes and the projections the coordinates.
AXES = torch.tensor([[3., 0, 0], [-3, 0, 0], [0, 2, 0], [0, -2, 0],
                     [0, 0, 1], [0, 0, -1]])


def test_principal_components_by_hand():
    assert torch.allclose(principal_components(AXES), AXES.double(),
                          atol=1e-12)
    # rotated by 30 degrees about z and shifted: the same projections; the
    # components (0.87, 0.5, 0) and (-0.5, 0.87, 0) keep their signs
    # (largest loading positive)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.]])
    moved = AXES @ rot.T + torch.tensor([5., -1, 2])
    assert torch.allclose(principal_components(moved), AXES.double(),
                          atol=1e-6)


def test_principal_components_match_numpy_svd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * np.array([5, 3, 2, 1, .5, .1])
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:3].T  # (40, 3), up to the sign of each column
    for k in range(3):
        expected[:, k] *= np.sign(vt[k, np.abs(vt[k]).argmax()])
    got = principal_components(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_pca_rgb_scales_each_component_over_all_images():
    # two "images" of three tokens: the same six points
    rgb = pca_rgb(AXES.reshape(2, 3, 3))
    assert rgb.shape == (2, 3, 3)
    # component 1 is x in [-3, 3] -> (x + 3) / 6; 2 is y; 3 is z
    expected = (AXES - AXES.min(0).values) / (
        AXES.max(0).values - AXES.min(0).values)
    assert torch.allclose(rgb.reshape(6, 3), expected, atol=1e-6)


def test_principal_components_refuse_too_few_channels():
    with pytest.raises(ValueError, match=r'shape \(5, 2\).*C >= 3'):
        principal_components(torch.zeros(5, 2))


def test_cosine_map_by_hand():
    feats = torch.tensor([[[1., 0], [0, 1], [-1, 0], [1, 1]]])  # (1, 4, 2)
    raw = cosine_map(feats, 0, center=False)
    assert torch.allclose(raw, torch.tensor([[1., 0, -1, 2**-0.5]]))
    # centred: the mean (0.25, 0.5) is taken off first
    c = feats[0] - torch.tensor([.25, .5])
    expected = (c @ c[0]) / (c.norm(dim=1) * c[0].norm())
    assert torch.allclose(cosine_map(feats, 0), expected[None], atol=1e-6)


def _tiny_model_checkpoint(tiny_moma_run, tmp_path, save_teachers=False):
    """A randomly initialised tiny MOMA model's checkpoint, and the model."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(
        dict(o.split('=', 1) for o in tiny_moma_run['options']))
    cfg.model.save_teachers = save_teachers
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path / 'moma.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return path, model


def test_png_per_image_and_grid(tiny_moma_run, tmp_path):
    ckpt, trained = _tiny_model_checkpoint(tiny_moma_run, tmp_path)
    out = tmp_path / 'out'
    result = main([
        str(CONFIG),
        str(ckpt), '--images',
        str(tiny_moma_run['images']), '--num', '3', '--out',
        str(out), '--patch', '1', '2', '--device', 'cpu', '--cfg-options'
    ] + tiny_moma_run['options'])
    names = ['00', '01', '02']
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f'{n}.png' for n in names] + ['grid.png'])
    for path in out.iterdir():
        with Image.open(path) as img:
            assert img.format == 'PNG' and min(img.size) > 100
    assert result['patch'] == (1, 2)
    # 3 images x 16 patches (32 px, 8 px patches) per model
    assert list(result['pca']) == ['mocov3', 'mae', 'student']
    for name in result['pca']:
        assert result['pca'][name].shape == (3, 16, 3)
        rgb = result['pca'][name]
        assert rgb.min() == 0 and rgb.max() == 1
        cos = result['cosine'][name]
        assert cos.shape == (3, 16)
        assert torch.allclose(cos[:, 1 * 4 + 2], torch.ones(3), atol=1e-5)


def test_weights_come_from_checkpoint_and_init_cfg(tiny_moma_run, tmp_path):
    ckpt, trained = _tiny_model_checkpoint(tiny_moma_run, tmp_path)
    options = dict(o.split('=', 1) for o in tiny_moma_run['options'])
    model = load_model(str(CONFIG), str(ckpt), options)
    for key, value in trained.state_dict().items():  # student, necks
        assert torch.equal(model.state_dict()[key], value), key
    for name, path in tiny_moma_run['ckpts'].items():  # init_cfg
        saved = torch.load(path, weights_only=True)['state_dict']
        for k, v in model.teachers[name].state_dict().items():
            assert torch.equal(v, saved['backbone.' + k]), (name, k)
    assert not model.training


def test_teachers_from_a_save_teachers_checkpoint(tiny_moma_run, tmp_path):
    ckpt, trained = _tiny_model_checkpoint(
        tiny_moma_run, tmp_path, save_teachers=True)
    # no init_cfg at all now: the teachers must come from the checkpoint
    options = {
        'model.teachers.mae.init_cfg': None,
        'model.teachers.mocov3.init_cfg': None,
        'model.save_teachers': True
    }
    model = load_model(str(CONFIG), str(ckpt), options)
    for k, v in trained.teachers.state_dict().items():
        assert torch.equal(model.teachers.state_dict()[k], v), k


def test_teachers_without_weights_are_refused(tiny_moma_run, tmp_path):
    ckpt, _ = _tiny_model_checkpoint(tiny_moma_run, tmp_path)
    with pytest.raises(ValueError, match=r"teacher 'mae' has no weights.*"
                       r'model\.teachers\.mae\.init_cfg\.checkpoint=PATH'):
        load_model(str(CONFIG), str(ckpt), {
            'model.teachers.mae.init_cfg': None,
            'model.teachers.mocov3.init_cfg.checkpoint':
            str(tiny_moma_run['ckpts']['mocov3'])
        })


def test_patch_off_the_grid_is_refused(tiny_moma_run, tmp_path):
    ckpt, _ = _tiny_model_checkpoint(tiny_moma_run, tmp_path)
    with pytest.raises(ValueError, match=r'--patch 4 0 .*ROW in \[0, 3\]'):
        main([
            str(CONFIG),
            str(ckpt), '--images',
            str(tiny_moma_run['images']), '--num', '1', '--out',
            str(tmp_path / 'out'), '--patch', '4', '0', '--device', 'cpu',
            '--cfg-options'
        ] + tiny_moma_run['options'])


def test_tool_script(tiny_moma_run, tmp_path, run_tool):
    ckpt, _ = _tiny_model_checkpoint(tiny_moma_run, tmp_path)
    proc = run_tool([
        sys.executable, ROOT / 'tools/analysis_tools/visualize_features.py',
        CONFIG, ckpt, '--images', tiny_moma_run['images'], '--num', '2',
        '--out', tmp_path / 'cli', '--device', 'cpu', '--cfg-options'
    ] + tiny_moma_run['options'], cwd=tmp_path)
    assert "models ['mocov3', 'mae', 'student']" in proc.stdout
    assert (tmp_path / 'cli' / 'grid.png').is_file()
