"""LayerDecayOptimWrapperConstructor: each parameter gets its depth's rate."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

import mmmoma  # noqa: F401
from mmmoma.engine import LayerDecayOptimWrapperConstructor
from mmpretrain.models import VisionTransformer

ROOT = Path(__file__).resolve().parents[2]
SEG_CONFIG = ROOT / 'tests/data/configs/seg_tiny_cpu.py'
TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
LR, WD, RATE = 1e-3, 0.05, 0.5


def expected_depth(name: str, num_layers: int = 4) -> int:
    """The rule, written out by hand for the names of a tiny segmentor."""
    if (name in ('backbone.cls_token', 'backbone.pos_embed')
            or name.startswith('backbone.patch_embed.')):
        return 0
    if name.startswith('backbone.layers.'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1  # neck, decode_head, auxiliary_head


def no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim == 1 or name.endswith(('pos_embed', 'cls_token'))


def by_param(optimizer) -> dict:
    """``{id(param): (group, name)}``; fails if a parameter is in two."""
    seen = {}
    for group in optimizer.param_groups:
        assert len(group['params']) == len(group['param_names'])
        for param, name in zip(group['params'], group['param_names']):
            assert id(param) not in seen, name
            seen[id(param)] = (group, name)
    return seen


@pytest.fixture(scope='module')
def segmentor():
    """The tiny UperNet of the CPU tests, built by MMSeg's registry."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(SEG_CONFIG))
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def seg_optim_cfg(**paramwise):
    paramwise.setdefault('layer_decay_rate', RATE)
    return dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=paramwise)


def test_segmentor_rates_match_the_rule(segmentor):
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(
            segmentor,
            seg_optim_cfg(
                norm_decay_mult=0.0,
                bias_decay_mult=0.0,
                flat_decay_mult=0.0,
                custom_keys={
                    'backbone.pos_embed': dict(decay_mult=0.0),
                    'backbone.cls_token': dict(decay_mult=0.0)
                }))
    groups = by_param(wrapper.optimizer)
    named = dict(segmentor.named_parameters())
    assert {n for _, n in groups.values()} == set(named)
    for name, param in named.items():
        group, _ = groups[id(param)]
        depth = expected_depth(name)
        assert group['layer_id'] == depth, name
        assert group['lr'] == pytest.approx(LR * RATE**(5 - depth)), name
        assert group['weight_decay'] == (0.0 if no_decay(name, param) else
                                         WD), name
    # the rates by depth: stem rate**5 ... last block rate, heads 1
    scales = {g['layer_id']: g['lr_scale']
              for g in wrapper.optimizer.param_groups}
    assert scales == pytest.approx({d: RATE**(5 - d) for d in range(6)})
    # one group per (depth, settings), not per parameter
    assert len(wrapper.optimizer.param_groups) < len(named) / 4


def test_the_config_recipe_through_the_registry(segmentor):
    """The seg configs' own optim_wrapper (rate 0.65) builds and applies."""
    cfg = Config.fromfile(str(SEG_CONFIG))
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(segmentor, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.lr
    groups = by_param(wrapper.optimizer)
    for name, param in segmentor.named_parameters():
        group, _ = groups[id(param)]
        assert group['lr'] == pytest.approx(
            base * 0.65**(5 - expected_depth(name))), name


def test_lr_mult_multiplies_the_decayed_rate(segmentor):
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(
            segmentor,
            seg_optim_cfg(custom_keys={'decode_head': dict(lr_mult=10.0)}))
    groups = by_param(wrapper.optimizer)
    for name, param in segmentor.named_parameters():
        group, _ = groups[id(param)]
        mult = 10.0 if name.startswith('decode_head') else 1.0
        assert group['lr'] == pytest.approx(
            LR * mult * RATE**(5 - expected_depth(name))), name


def test_same_rates_as_mmpretrains_constructor_on_a_classifier():
    """Usable from MMPretrain: equal to its LearningRateDecay constructor."""
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(
                    type='MomaViT',
                    arch=TINY,
                    img_size=32,
                    patch_size=8,
                    out_type='avg_featmap',
                    final_norm=False),
                head=dict(
                    type='LinearClsHead', num_classes=10, in_channels=32)))
    rates = {}
    for constructor in ('LearningRateDecayOptimWrapperConstructor',
                        'LayerDecayOptimWrapperConstructor'):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            wrapper = build_optim_wrapper(
                model,
                dict(
                    optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
                    constructor=constructor,
                    paramwise_cfg=dict(
                        layer_decay_rate=RATE,
                        custom_keys={
                            '.ln': dict(decay_mult=0.0),
                            '.bias': dict(decay_mult=0.0),
                            '.cls_token': dict(decay_mult=0.0),
                            '.pos_embed': dict(decay_mult=0.0)
                        })))
        rates[constructor] = {
            id(p): (g['lr'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups for p in g['params']
        }
    ours = rates['LayerDecayOptimWrapperConstructor']
    theirs = rates['LearningRateDecayOptimWrapperConstructor']
    assert ours.keys() == theirs.keys()
    for key, (lr, wd) in theirs.items():
        assert ours[key] == pytest.approx((lr, wd))


def test_frozen_parameters_are_left_out():
    model = nn.Module()
    model.backbone = VisionTransformer(
        arch=TINY, img_size=32, patch_size=8, frozen_stages=2)
    model.head = nn.Linear(32, 3)
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=LR)),
        dict(layer_decay_rate=RATE))
    params = []
    constructor.add_params(params, model)
    names = {n for g in params for n in g['param_names']}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == trainable
    assert not any(n.startswith('backbone.layers.1.') for n in names)
    depths = {g['layer_id'] for g in params}
    assert depths == {3, 4, 5}  # blocks 2, 3 and the head


@pytest.mark.parametrize('rate', [0, -0.5, 1.5, None, True])
def test_bad_rate_is_refused(rate):
    paramwise = {} if rate is None else dict(layer_decay_rate=rate)
    with pytest.raises(ValueError, match=r'layer_decay_rate=.*\(0, 1\]'):
        LayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=LR)), paramwise)


def test_a_model_without_a_vit_there_is_refused():
    model = nn.Module()
    model.encoder = VisionTransformer(arch=TINY, img_size=32, patch_size=8)
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=LR)), dict(layer_decay_rate=0.7))
    with pytest.raises(ValueError,
                       match="paramwise_cfg.backbone='backbone' is nothing"):
        constructor(model)
    # the path names where the ViT is
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=LR)),
        dict(layer_decay_rate=0.7, backbone='encoder'))
    groups = constructor(model).optimizer.param_groups
    assert {g['layer_id'] for g in groups} == set(range(6))
