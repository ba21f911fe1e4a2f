"""MomaAlgorithm's recipe options beyond the paper: statistics norms,
teacher balancing, multi-layer targets, attention-guided masks, neck
warm-up."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmmoma.models.utils import (cls_attention, guided_noise,
                                 random_token_mask, vit_forward_tokens)
from test_moma import tiny_cfg  # two teachers, 32 px; the MAE one 48-d


def build(**overrides):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


def samples(ids):
    return [DataSample(metainfo=dict(sample_idx=i)) for i in ids]


SEED = torch.tensor(12345)
IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize('norm', ['channel', 'position', 'phi_s'])
def test_statistics_heads_are_filled_trained_and_checkpointed(norm):
    model = build(head=dict(type='SmoothL1AlignHead', target_norm=norm))
    assert model.heads.mae.norm.channels == 48
    assert model.heads.mocov3.norm.channels == 32
    model.train()
    losses = model.loss(IMAGES, samples([0, 1, 2, 3]))
    sum(losses.values()).backward()
    state = model.state_dict()
    assert state['heads.mae.norm.updates'].min() == 1
    # the statistics are those of the teacher's features of this batch
    target = model.teacher_targets('mae', IMAGES)[0]['mae']
    torch.testing.assert_close(state['heads.mae.norm.mean'][-1],
                               target[:, -1].double().mean(0)
                               if norm == 'position' else
                               target[:, 1:].double().mean((0, 1)))


def test_a_head_width_that_contradicts_the_teacher_is_refused():
    with pytest.raises(ValueError, match="target 'mae' has in_channels=32"):
        build(head=dict(type='SmoothL1AlignHead', target_norm='channel',
                        in_channels=32))


def test_teacher_dropping_p0_is_the_average_and_p1_keeps_the_hardest():
    ids = samples([4, 5, 6, 7])
    average = build()
    drop0 = build(teacher_balance=dict(type='drop', p=0.0))
    a = average.loss(IMAGES, ids)
    b = drop0.loss(IMAGES, ids)
    # equal token counts per sample: per-sample means average to the mean
    torch.testing.assert_close(sum(b[k] for k in b if 'loss' in k),
                               sum(a.values()))
    torch.testing.assert_close(b['weight_mae'], torch.tensor(0.5))
    losses = torch.tensor([[1.0, 5.0, 2.0, 0.1], [2.0, 1.0, 3.0, 0.2]])
    keep = drop0.balance.drop_mask(losses, SEED, torch.tensor(0),
                                 torch.arange(4))
    assert keep.tolist() == [[1.0] * 4] * 2
    drop1 = build(teacher_balance=dict(type='drop', p=1.0))
    keep = drop1.balance.drop_mask(losses, SEED, torch.tensor(0),
                                 torch.arange(4))
    assert keep.tolist() == [[0, 1, 0, 0], [1, 0, 1, 1]]  # the argmax only


def test_teacher_dropping_is_keyed_by_sample_and_step():
    model = build(teacher_balance=dict(type='drop', p=0.5))
    losses = torch.rand(2, 64)
    ids = torch.arange(100, 164)
    keep = model.balance.drop_mask(losses, SEED, torch.tensor(3), ids)
    # the same sample in another batch slot draws the same
    perm = torch.randperm(64)
    again = model.balance.drop_mask(losses[:, perm], SEED, torch.tensor(3),
                                    ids[perm])
    assert torch.equal(again, keep[:, perm])
    assert not torch.equal(
        model.balance.drop_mask(losses, SEED, torch.tensor(4), ids), keep)
    dropped = 1 - keep.mean()  # half of the non-argmax entries
    assert 0.1 < dropped < 0.4


def test_teacher_dropping_gradients_follow_the_kept_losses():
    model = build(teacher_balance=dict(type='drop', p=1.0))
    model.train()
    losses = model.loss(IMAGES, samples([0, 1, 2, 3]))
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    weights = [float(losses['weight_mae']), float(losses['weight_mocov3'])]
    assert sum(weights) == pytest.approx(1.0)
    for name, weight in zip(('mae', 'mocov3'), weights):
        grads = [p.grad for p in model.necks[name].parameters()
                 if p.requires_grad]
        if weight == 0:  # never the hardest: its neck learns nothing
            assert all(g is None or not g.any() for g in grads)
        else:
            assert any(g is not None and g.any() for g in grads)


def test_uncertainty_weights_by_hand():
    model = build(teacher_balance=dict(type='uncertainty'))
    model.train()
    with torch.no_grad():
        model.balance.log_vars.copy_(torch.tensor([0.5, -0.25]))
    torch.manual_seed(1)
    losses = model.loss(IMAGES, None)
    plain = build()
    torch.manual_seed(1)
    raw = {k: v / 0.5 for k, v in plain.loss(IMAGES, None).items()}
    s = {'mocov3': 0.5, 'mae': -0.25}  # teacher order of the config
    for name in ('mocov3', 'mae'):
        w = 0.5 * torch.exp(torch.tensor(-s[name]))
        torch.testing.assert_close(losses[f'loss_{name}'],
                                   w * raw[f'loss_{name}'])
        torch.testing.assert_close(losses[f'weight_{name}'], w)
    torch.testing.assert_close(losses['loss_log_var'],
                               torch.tensor(0.5 * 0.5 + 0.5 * -0.25))
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    # d/ds [w exp(-s) L + w s] = w (1 - exp(-s) L)
    for i, name in enumerate(('mocov3', 'mae')):
        want = 0.5 * (1 - torch.exp(torch.tensor(-s[name])) *
                      raw[f'loss_{name}'].detach())
        torch.testing.assert_close(model.balance.log_vars.grad[i], want)


def test_multi_layer_teacher_gives_one_target_per_block():
    teachers = tiny_cfg()['teachers']
    mae = teachers['mae']
    mae.update(arch=dict(mae['arch'], num_layers=3), out_indices=[0, 2])
    model = build(teachers=teachers)
    assert list(model.necks) == ['mocov3', 'mae_l0', 'mae_l2']
    assert model.key_weights == dict(mocov3=0.5, mae_l0=0.25, mae_l2=0.25)
    targets, _ = model.teacher_targets('mae', IMAGES)
    with torch.no_grad():
        for layer in (0, 2):
            torch.testing.assert_close(
                targets[f'mae_l{layer}'],
                vit_forward_tokens(model.teachers.mae, IMAGES, layer=layer))
    losses = model.loss(IMAGES, None)
    assert set(losses) == {'loss_mocov3', 'loss_mae_l0', 'loss_mae_l2'}

    fused = build(teachers=teachers, layer_fusion='mean')
    assert list(fused.necks) == ['mocov3', 'mae']
    target = fused.teacher_targets('mae', IMAGES)[0]['mae']
    with torch.no_grad():
        want = sum(
            F.layer_norm(
                vit_forward_tokens(fused.teachers.mae, IMAGES, layer=i),
                (48, ), eps=1e-6) for i in (0, 2)) / 2
    torch.testing.assert_close(target, want)


def test_cls_attention_by_hand():
    model = build()
    block = model.teachers.mae.layers[1]
    x = torch.randn(2, 17, 48)
    with torch.no_grad():
        got = cls_attention(block, x)
        h = block.ln1(x)
        q, k, _ = block.attn.qkv(h).chunk(3, dim=-1)
        q = q[:, :1].reshape(2, 1, 2, 24).transpose(1, 2)
        k = k.reshape(2, 17, 2, 24).transpose(1, 2)
        want = (q @ k.transpose(-2, -1) / 24**0.5).softmax(-1).mean(1)[:, 0]
    torch.testing.assert_close(got, want)
    assert torch.allclose(got.sum(-1), torch.ones(2))


def test_guided_masks_keep_the_most_attended_patches():
    attention = torch.rand(3, 16)
    noise = torch.rand(3, 16)
    ids_keep, _, mask = random_token_mask(
        3, 16, 0.75, 'cpu', guided_noise(noise, attention, 2))
    top = attention.topk(2, dim=1).indices
    for b in range(3):
        assert set(top[b].tolist()) <= set(ids_keep[b].tolist())
        # the other 2 visible patches: the lowest noise among the rest
        rest = [i for i in noise[b].argsort().tolist()
                if i not in top[b].tolist()][:2]
        assert set(ids_keep[b].tolist()) == set(top[b].tolist()) | set(rest)
    assert torch.equal(guided_noise(noise, attention, 0), noise)


def test_guided_masking_in_the_model_is_deterministic_per_sample():
    model = build(mask_guide=dict(teacher='mocov3', random_share=0.5))
    assert model.masks.num_guided == 2  # half of 4 visible patches
    _, attention = model.teacher_targets('mocov3', IMAGES)
    ids = torch.tensor([10, 11, 12, 13])
    step = torch.tensor(7)
    keep, _, _ = model.draw_mask(IMAGES, ids, step, attention)
    top = attention.topk(2, dim=1).indices
    for b in range(4):
        assert set(top[b].tolist()) <= set(keep[b].tolist())
    # the same samples in another order and batch: the same masks
    perm = torch.tensor([2, 0, 3, 1])
    again, _, _ = model.draw_mask(IMAGES[perm], ids[perm], step,
                                  attention[perm])
    assert torch.equal(again, keep[perm])
    # the loss runs the guide teacher's attention from the teacher cache
    cached = build(mask_guide=dict(teacher='mocov3'),
                   teacher_cache=dict(size=8))
    direct = build(mask_guide=dict(teacher='mocov3'))
    for _ in range(2):  # the second step reads the cache
        a = cached.loss(IMAGES, samples([0, 1, 2, 3]))
        b = direct.loss(IMAGES, samples([0, 1, 2, 3]))
        for k in a:
            torch.testing.assert_close(a[k], b[k])


def test_neck_warmup_trains_only_the_necks_first():
    model = build(neck_warmup_iters=2)
    model.train()
    ids = samples([0, 1, 2, 3])
    for step in range(3):
        model.zero_grad(set_to_none=True)
        losses = model.loss(IMAGES, ids)
        sum(losses.values()).backward()
        student = [p.grad for p in model.backbone.parameters()
                   if p.requires_grad]
        necks = [p.grad for p in model.necks.parameters() if p.requires_grad]
        assert all(g is not None for g in necks)
        if step < 2:
            assert all(g is None for g in student)
        else:
            assert all(g is not None for g in student)
    with pytest.raises(ValueError, match='neck_warmup_iters needs'):
        model.loss(IMAGES, None)


@pytest.mark.parametrize('overrides,match', [
    (dict(teacher_balance=dict(type='max')), "teacher_balance.type='max'"),
    (dict(teacher_balance=dict(type='drop', p=1.5)), 'p=1.5'),
    (dict(teacher_balance=dict(type='average', p=0.5)), "unknown keys"),
    (dict(layer_fusion='sum'), "layer_fusion='sum'"),
    (dict(mask_guide=dict(teacher='dino')), "mask_guide.teacher='dino'"),
    (dict(mask_guide=dict(teacher='mae', random_share=2)),
     'random_share=2'),
    (dict(mask_guide=dict(teacher='mae'), mask_teacher_input=True),
     'mask_teacher_input'),
    (dict(neck_warmup_iters=-1), 'neck_warmup_iters=-1'),
])
def test_bad_recipe_options_fail_at_build(overrides, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_cfg(**overrides))


def test_fused_layers_feed_the_position_statistics():
    """``layer_fusion='mean'`` with ``target_norm='position'`` (the study's
    ``mean-position`` row): the head's statistics are taken on the fused
    target, so after one (warm-start) step they are its per-(position,
    channel) mean and variance over the batch."""
    teachers = tiny_cfg()['teachers']
    mae = teachers['mae']
    mae.update(arch=dict(mae['arch'], num_layers=3), out_indices=[0, 2])
    model = build(teachers=teachers, layer_fusion='mean',
                  head=dict(type='SmoothL1AlignHead', target_norm='position'),
                  teacher_balance=dict(type='uncertainty'))
    fused = model.teacher_targets('mae', IMAGES)[0]['mae'].double()
    losses = model.loss(IMAGES, None)
    assert {'loss_mocov3', 'loss_mae', 'loss_log_var'} <= set(losses)
    norm = model.heads['mae'].norm
    torch.testing.assert_close(norm.mean, fused.mean(0))
    torch.testing.assert_close(norm.var, fused.var(0, unbiased=False))
