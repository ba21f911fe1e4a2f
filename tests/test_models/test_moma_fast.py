"""MomaAlgorithm's speed options: the same losses, frozen teachers, one
teacher pass per step, fused attention, no host sync in the step."""
import copy
import os
import shutil
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import mmmoma  # noqa: F401
from mmpretrain.models.utils.attention import MultiheadAttention
from mmpretrain.registry import MODELS

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
FAST_BF16 = dict(teacher_dtype='bfloat16', teacher_inference_mode=True)


def tiny_cfg(**overrides):
    teacher = dict(arch=ARCH, img_size=32, patch_size=8, out_type='raw')
    cfg = dict(
        type='MomaAlgorithm',
        backbone=dict(
            type='mmpretrain.MAEViT', arch=ARCH, img_size=32, patch_size=8),
        teachers=dict(
            mocov3=dict(type='mmpretrain.MoCoV3ViT', **teacher),
            mae=dict(type='mmpretrain.VisionTransformer', **teacher)),
        neck=dict(
            type='MomaNeck', decoder_embed_dims=32, decoder_depth=1,
            decoder_num_heads=2),
        head=dict(type='SmoothL1AlignHead'),
        mask_ratio=0.75)
    cfg.update(overrides)
    return copy.deepcopy(cfg)


def build_pair(fast: dict, **common):
    """A default model and one with the ``fast`` options, same weights."""
    torch.manual_seed(0)
    ref = MODELS.build(tiny_cfg(**common))
    ref.init_weights()
    model = MODELS.build(tiny_cfg(**common, **fast))
    model.init_weights()
    model.load_state_dict(ref.state_dict())
    # save_teachers=False: the teachers are not in the state dict.
    model.teachers.load_state_dict(ref.teachers.state_dict())
    return ref.train(), model.train()


def step(model, images):
    """Losses and gradients of one step with the masks of seed 0."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    losses = model.loss(images, None)
    sum(losses.values()).backward()
    grads = {
        n: p.grad.clone()
        for n, p in model.named_parameters() if p.grad is not None
    }
    return {k: v.detach() for k, v in losses.items()}, grads


def images(n=3):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=gen)


def test_float32_speed_options_change_nothing():
    fast = dict(teacher_dtype='float32', teacher_inference_mode=True,
                compile=dict(backend='eager'))
    ref, model = build_pair(fast)
    x = images()
    ref_losses, ref_grads = step(ref, x)
    losses, grads = step(model, x)
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-6,
                                   atol=0)
    assert set(grads) == set(ref_grads)
    for n in ref_grads:
        torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-5,
                                   atol=1e-8, msg=n)


@pytest.mark.skipif(shutil.which(os.environ.get('CXX', 'g++')) is None,
                    reason="inductor on CPU needs a C++ compiler ($CXX or "
                    'g++)')
def test_inductor_compile_matches_eager():
    """``compile=True``: the default backend, inductor, as the README's
    figures say (about a minute on 2 CPU cores, mostly compiling)."""
    ref, model = build_pair(dict(compile=True))
    assert 'backend' not in model.compile_cfg  # torch.compile's: inductor
    x = images()
    ref_losses, ref_grads = step(ref, x)
    losses, grads = step(model, x)
    for k in ref_losses:  # measured: 8e-8 and 9e-8
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-6,
                                   atol=0)
    assert set(grads) == set(ref_grads)
    for n in ref_grads:  # measured: at most 9e-7
        err = (grads[n] - ref_grads[n]).norm() / ref_grads[n].norm()
        assert err <= 1e-5, (n, err.item())


def test_bf16_teachers_give_close_losses_and_float32_targets():
    ref, model = build_pair(FAST_BF16)
    x = images()
    ref_losses, _ = step(ref, x)
    losses, grads = step(model, x)
    assert all(p.dtype == torch.bfloat16 for p in model.teachers.parameters())
    for k in ref_losses:  # measured: 3.1e-4 and 1.0e-4
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-3,
                                   atol=0)
    ids_keep, ids_restore = torch.arange(4)[None], torch.arange(16)[None]
    for name in ref.teachers:
        want = ref.teacher_targets(name, x[:1], ids_keep,
                                   ids_restore)[0][name]
        got = model.teacher_targets(name, x[:1], ids_keep,
                                    ids_restore)[0][name]
        assert got.dtype == torch.float32 and not got.is_inference()
        err = (got - want).norm() / want.norm()  # measured: 6.3e-3, 6.5e-3
        assert 0 < err < 2e-2, (name, err)  # rounded, not another function
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert n in grads and grads[n].abs().sum() > 0, n


def test_bf16_teachers_stay_frozen_and_bit_identical():
    _, model = build_pair(FAST_BF16)
    before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    # All parameters, as MMEngine's optimiser constructor passes them.
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    for _ in range(2):
        optim.zero_grad()
        sum(model.loss(images(), None).values()).backward()
        optim.step()
    assert not any(m.training for m in model.teachers.modules())
    for name, p in model.teachers.named_parameters():
        assert not p.requires_grad and p.grad is None, name
    for k, v in model.teachers.state_dict().items():
        assert v.dtype == torch.bfloat16 and torch.equal(v, before[k]), k


@pytest.mark.parametrize('fast', [{}, FAST_BF16], ids=['default', 'fast'])
def test_each_teacher_runs_once_per_step(fast):
    model = MODELS.build(tiny_cfg(**fast))
    model.init_weights()
    calls = Counter()
    for name, module in model.teachers.named_modules():
        if '.' in name:  # the teachers' parts; the teacher itself is not
            module.register_forward_hook(  # called (token-level forward)
                lambda m, i, o, name=name: calls.update([name]))
    sum(model.loss(images(), None).values()).backward()
    for teacher in model.teachers:
        assert calls[f'{teacher}.patch_embed'] == 1
        for i in range(ARCH['num_layers']):
            assert calls[f'{teacher}.layers.{i}'] == 1
    assert max(calls.values()) == 1, calls.most_common(3)


# Ops that wait for the device (a Python value of a tensor, or an output
# whose size depends on the data).
SYNC_OPS = ('aten::_local_scalar_dense', 'aten::nonzero', 'aten::is_nonzero',
            'aten::masked_select', 'aten::equal', 'aten::_unique2',
            'aten::unique_consecutive', 'aten::unique_dim')


class OpRecorder(TorchDispatchMode):
    """Names of the aten ops run, and boolean-mask indexing."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        indexing = ('aten::index', 'aten::index_put', 'aten::index_put_')
        if name in indexing and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool
                for i in args[1]):
            self.ops['boolean indexing'] += 1
        self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def syncs(ops: Counter) -> dict:
    return {k: ops[k] for k in SYNC_OPS + ('boolean indexing', ) if ops[k]}


def test_recorder_sees_syncs():
    x = torch.randn(8)
    with OpRecorder() as rec:
        x[x > 0].sum().item()
    assert set(syncs(rec.ops)) >= {'boolean indexing',
                                   'aten::_local_scalar_dense'}


@pytest.mark.parametrize('fast', [{}, FAST_BF16], ids=['default', 'fast'])
@pytest.mark.parametrize('variant', [
    {},
    dict(mask_teacher_input=True, neck=dict(type='MomaNeck', mode='linear')),
    dict(head=dict(type='SmoothL1AlignHead', positions='masked')),
], ids=['all', 'masked-teacher', 'masked-positions'])
def test_no_host_sync_in_loss_and_backward(fast, variant):
    model = MODELS.build(tiny_cfg(**variant, **fast))
    model.init_weights()
    x = images()
    with OpRecorder() as rec:
        losses = model.loss(x, None)
        sum(losses.values()).backward()
    assert not syncs(rec.ops)
    # Static shapes: every loss is a scalar, whatever the masks.
    assert all(v.shape == () for v in losses.values())


def test_attention_is_fused_everywhere():
    model = MODELS.build(tiny_cfg(**FAST_BF16))
    model.init_weights()
    attn = [m for m in model.modules() if isinstance(m, MultiheadAttention)]
    # 2 teachers x 2 blocks, 2 student blocks, 2 necks x 1 decoder block.
    assert len(attn) == 8
    for m in attn:
        assert m.scaled_dot_product_attention is (
            F.scaled_dot_product_attention)
    with torch.no_grad(), OpRecorder() as rec:
        model.loss(images(), None)
    fused = sum(n for op, n in rec.ops.items()
                if 'scaled_dot_product' in op and 'backward' not in op)
    assert fused == len(attn)
    assert not rec.ops['aten::_softmax']  # no unfused attention


def test_inference_mode_targets_work_in_place_and_in_backward():
    # target_norm='none': the raw target is saved for backward; the linear
    # neck masks ``valid`` in place. Both fail on inference tensors.
    common = dict(mask_teacher_input=True,
                  neck=dict(type='MomaNeck', mode='linear'),
                  head=dict(type='SmoothL1AlignHead', target_norm='none'))
    ref, model = build_pair(dict(teacher_inference_mode=True), **common)
    x = images()
    ref_losses, ref_grads = step(ref, x)
    losses, grads = step(model, x)
    for k in ref_losses:
        assert torch.equal(losses[k], ref_losses[k])
    for n in ref_grads:
        assert torch.equal(grads[n], ref_grads[n]), n


def test_compile_parts_are_compiled_lazily():
    model = MODELS.build(
        tiny_cfg(compile=dict(parts=('teachers', 'necks'), backend='eager')))
    assert model.compile_cfg == dict(
        parts=('teachers', 'necks'), backend='eager', dynamic=False)
    compiled = {
        name for name, m in model.named_modules()
        if getattr(m, '_compiled_call_impl', None) is not None
    }
    assert compiled == {
        'teachers.mocov3.layers.0', 'teachers.mocov3.layers.1',
        'teachers.mae.layers.0', 'teachers.mae.layers.1', 'necks.mocov3',
        'necks.mae'
    }


@pytest.mark.parametrize('overrides, match', [
    (dict(teacher_dtype='int8'), 'teacher_dtype=.int8. is not supported'),
    (dict(compile='yes'), 'compile=.yes. must be a bool or a dict'),
    (dict(compile=dict(parts=('student', ))), 'compile parts='),
])
def test_bad_speed_options_fail_at_build(overrides, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_cfg(**overrides))
