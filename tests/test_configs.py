"""Every config under configs/ loads, keeps custom_imports, builds its model."""
from pathlib import Path

import pytest
from mmengine import Config
from mmengine.registry import DefaultScope

import mmmoma  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


def test_configs_found():
    names = {p.name for p in CONFIGS}
    for required in ('moma_vit-b_moco-mae_100e.py',
                     'moma_vit-b_moco-to-mae_100e.py',
                     'moma_vit-b_mae-to-moco_100e.py'):
        assert required in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_builds(path):
    cfg = Config.fromfile(str(path))
    assert 'mmmoma' in cfg.custom_imports['imports']
    assert cfg.custom_imports.get('allow_failed_imports') is False
    scope = cfg.get('default_scope', 'mmpretrain')
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.model.type == 'MomaAlgorithm':
        # what the config promises, checked on the built model
        assert set(model.teachers) == set(cfg.model.teachers)
        assert 0 < model.mask_ratio < 1
        assert all(not p.requires_grad for p in model.teachers.parameters())

    if cfg.model.type == 'MomaAlgorithm':
        # pretraining runs are reseeded per epoch, stop on a NaN loss and
        # checkpoint on a preemption signal
        from mmengine.registry import HOOKS
        hooks = {h['type']: h for h in cfg.get('custom_hooks', [])}
        for name in ('EpochSeedHook', 'NonFiniteLossHook', 'PreemptionHook'):
            assert name in hooks, path.name
            with DefaultScope.overwrite_default_scope(scope):
                HOOKS.build(dict(hooks[name]))
