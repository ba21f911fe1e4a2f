import copy

import pytest
import torch

import mmmoma  # noqa: F401

from mmpretrain.registry import MODELS

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
WIDE = dict(embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96)


def tiny_cfg(**overrides):
    cfg = dict(
        type='MomaAlgorithm',
        backbone=dict(
            type='mmpretrain.MAEViT', arch=ARCH, img_size=32, patch_size=8),
        teachers=dict(
            mocov3=dict(
                type='mmpretrain.MoCoV3ViT', arch=copy.deepcopy(ARCH),
                img_size=32, patch_size=8, out_type='raw'),
            mae=dict(
                type='mmpretrain.VisionTransformer', arch=WIDE, img_size=32,
                patch_size=8, out_type='raw')),
        neck=dict(
            type='MomaNeck', decoder_embed_dims=32, decoder_depth=1,
            decoder_num_heads=2),
        head=dict(type='SmoothL1AlignHead'),
        mask_ratio=0.75)
    cfg.update(overrides)
    return cfg


def build(**overrides):
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


def save_backbone(module, path):
    state = {'backbone.' + k: v for k, v in module.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path)


def test_gradients_reach_student_and_necks_only():
    torch.manual_seed(0)
    model = build()
    model.train()
    losses = model.loss(torch.randn(3, 3, 32, 32), None)
    assert set(losses) == {'loss_mocov3', 'loss_mae'}
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith('teachers.'):
            assert not p.requires_grad and p.grad is None, name
        elif name == 'backbone.pos_embed':  # MAE's fixed sin-cos positions
            assert not p.requires_grad
        elif name.endswith('pos_embed'):
            assert not p.requires_grad, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # No stop-gradient on the student's patch embedding.
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


def test_teachers_frozen_through_training_steps():
    torch.manual_seed(0)
    model = build()
    before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    student_before = model.backbone.layers[0].attn.qkv.weight.clone()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    model.train()
    for _ in range(3):
        optim.zero_grad()
        sum(model.loss(torch.randn(2, 3, 32, 32), None).values()).backward()
        optim.step()
        assert not model.teachers.training
        assert all(not m.training for m in model.teachers.modules())
    for k, v in model.teachers.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(model.backbone.layers[0].attn.qkv.weight,
                           student_before)


def test_loss_is_weighted_average_of_heads():
    torch.manual_seed(0)
    model = build(loss_weights=dict(mae=3.0))
    assert model.loss_weights == dict(mocov3=0.0, mae=3.0)
    images = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    weighted = model.loss(images, None)
    model.loss_weights = dict(mocov3=1.0, mae=1.0)
    torch.manual_seed(1)  # the same mask
    raw = model.loss(images, None)
    assert raw['loss_mae'] > 0 and raw['loss_mocov3'] > 0
    assert torch.allclose(weighted['loss_mae'], 3 * raw['loss_mae'])
    assert weighted['loss_mocov3'] == 0
    assert build().loss_weights == dict(mocov3=0.5, mae=0.5)


def test_checkpoint_holds_no_teacher_weights_and_reloads_strictly():
    model = build()
    state = model.state_dict()
    assert not any(k.startswith('teachers.') for k in state)
    assert any(k.startswith('necks.mae.') for k in state)
    assert any(k.startswith('backbone.') for k in state)
    other = build()
    result = other.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    keep = build(save_teachers=True)
    assert any(k.startswith('teachers.') for k in keep.state_dict())


def test_teachers_and_student_load_strictly_from_init_cfg(tmp_path):
    from mmpretrain.models import MAEViT, MoCoV3ViT, VisionTransformer
    torch.manual_seed(0)
    src_moco = MoCoV3ViT(arch=ARCH, img_size=32, patch_size=8, out_type='raw')
    src_mae = VisionTransformer(arch=WIDE, img_size=32, patch_size=8,
                                out_type='raw')
    src_student = MAEViT(arch=ARCH, img_size=32, patch_size=8)
    for m in (src_moco, src_mae, src_student):
        m.init_weights()
        torch.nn.init.normal_(m.patch_embed.projection.weight)
    cfg = tiny_cfg()
    cfg['teachers']['mocov3']['init_cfg'] = dict(
        type='Pretrained', checkpoint=save_backbone(src_moco, tmp_path / 'a'),
        prefix='backbone.')
    cfg['teachers']['mae']['init_cfg'] = dict(
        type='Pretrained', checkpoint=save_backbone(src_mae, tmp_path / 'b'),
        prefix='backbone.')
    cfg['backbone']['init_cfg'] = dict(
        type='Pretrained',
        checkpoint=save_backbone(src_student, tmp_path / 'c'),
        prefix='backbone.')
    model = MODELS.build(cfg)
    model.init_weights()
    for src, dst in ((src_moco, model.teachers.mocov3),
                     (src_mae, model.teachers.mae),
                     (src_student, model.backbone)):
        for k, v in src.state_dict().items():
            assert torch.equal(v, dst.state_dict()[k]), k


def test_masked_teacher_input_targets_visible_tokens_only():
    torch.manual_seed(0)
    model = build(mask_teacher_input=True)
    images = torch.randn(2, 3, 32, 32)
    from mmmoma.models.utils import random_token_mask, vit_forward_tokens
    ids_keep, ids_restore, mask = random_token_mask(2, 16, 0.75, 'cpu')
    target = model.teacher_targets('mae', images, ids_keep,
                                   ids_restore)[0]['mae']
    valid = model.valid_positions('mae', mask == 0)
    assert valid[:, 1:].sum().item() == ids_keep.numel()
    assert torch.equal(valid[:, 1:], mask == 0)
    sub = vit_forward_tokens(model.teachers.mae, images, ids_keep)
    assert torch.allclose(target[0, 1 + ids_keep[0, 0]], sub[0, 1])
    assert build().valid_positions('mae', mask == 0).all()


@pytest.mark.parametrize('overrides,match', [
    (dict(teachers={}), 'teachers is empty'),
    (dict(mask_ratio=0.0), r'mask_ratio=0\.0 .*\(0, 1\)'),
    (dict(mask_ratio=1.0), r'mask_ratio=1\.0'),
    (dict(mask_ratio=1.5), r'mask_ratio=1\.5'),
    (dict(mask_ratio=0.99), 'leaves no visible patch'),
    (dict(loss_weights=dict(dino=1.0)), r"unknown teacher\(s\) \['dino'\]"),
    (dict(neck=dict(type='MomaNeck', out_channels=64)),
     'out_channels=64, but the teacher needs'),
    (dict(head=dict(type='SmoothL1AlignHead', positions='masked'),
          neck=dict(type='MomaNeck', mode='linear')),
     "positions='masked' but its neck"),
    (dict(head=dict(type='SmoothL1AlignHead', positions='masked'),
          mask_teacher_input=True), 'no targets with mask_teacher_input'),
])
def test_bad_configuration_fails_at_build(overrides, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(tiny_cfg(**overrides))


def test_image_size_not_divisible_by_patch():
    cfg = tiny_cfg()
    cfg['backbone']['img_size'] = 30
    with pytest.raises(ValueError, match=r'backbone\.img_size=30 .*patch_size'):
        MODELS.build(cfg)


def test_teacher_grid_mismatch_refused_without_resampling():
    cfg = tiny_cfg(teacher_resample=None)
    cfg['teachers']['mae']['patch_size'] = 16
    with pytest.raises(ValueError, match='teachers.mae: its patch grid'):
        MODELS.build(cfg)
    cfg = tiny_cfg(mask_teacher_input=True)
    cfg['teachers']['mae']['patch_size'] = 16
    with pytest.raises(ValueError, match='with mask_teacher_input=True'):
        MODELS.build(cfg)


def test_teacher_on_another_grid_is_resampled_to_the_student_grid():
    """A 16-px-patch teacher (2 x 2 tokens) beside the 8-px student (4 x 4):
    its targets are its own tokens, interpolated; the student learns."""
    import torch.nn.functional as F
    cfg = tiny_cfg()
    cfg['teachers']['mae']['patch_size'] = 16
    model = MODELS.build(cfg)
    model.init_weights()
    images = torch.randn(2, 3, 32, 32)
    from mmmoma.models.utils import random_token_mask, vit_forward_tokens
    ids_keep, ids_restore, mask = random_token_mask(2, 16, 0.75, 'cpu')
    target = model.teacher_targets('mae', images, ids_keep,
                                   ids_restore)[0]['mae']
    valid = model.valid_positions('mae', mask == 0)
    assert target.shape[:2] == (2, 17) and valid.all()
    with torch.no_grad():
        own = vit_forward_tokens(model.teachers.mae, images)  # (2, 5, C)
    assert torch.equal(target[:, 0], own[:, 0])  # class token kept
    grid = own[:, 1:].transpose(1, 2).reshape(2, -1, 2, 2)
    want = F.interpolate(grid, size=(4, 4), mode='bilinear',
                         align_corners=False).flatten(2).transpose(1, 2)
    assert torch.allclose(target[:, 1:], want)
    losses = model.loss(images, None)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.backbone.parameters()
               if p.requires_grad)


def test_missing_and_corrupt_teacher_checkpoints(tmp_path):
    cfg = tiny_cfg()
    cfg['teachers']['mae']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError,
                       match=r'teachers\.mae\.init_cfg\.checkpoint=.*nope'):
        MODELS.build(cfg)
    junk = tmp_path / 'junk.pth'
    junk.write_text('not a checkpoint')
    cfg['teachers']['mae']['init_cfg']['checkpoint'] = str(junk)
    with pytest.raises(ValueError, match='is not a PyTorch checkpoint'):
        MODELS.build(cfg)


def test_teacher_checkpoint_of_another_arch_fails_at_init(tmp_path):
    from mmpretrain.models import VisionTransformer
    other = VisionTransformer(arch=ARCH, img_size=32, patch_size=8,
                              out_type='raw')  # 32-d, the teacher is 48-d
    cfg = tiny_cfg()
    cfg['teachers']['mae']['init_cfg'] = dict(
        type='Pretrained', checkpoint=save_backbone(other, tmp_path / 'x'),
        prefix='backbone.')
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match=r'mis-shaped: cls_token'):
        model.init_weights()
    cfg['teachers']['mae']['init_cfg']['prefix'] = 'encoder.'
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match="no weights under .*prefix='encoder.'"):
        model.init_weights()


def test_student_with_frozen_patch_embed_is_refused():
    cfg = tiny_cfg(backbone=dict(
        type='mmpretrain.MoCoV3ViT', arch=ARCH, img_size=32, patch_size=8,
        stop_grad_conv1=True))
    with pytest.raises(ValueError, match='patch embedding included'):
        MODELS.build(cfg)


def test_wrong_input_size_is_reported():
    model = build()
    with pytest.raises(RuntimeError, match='built for'):
        model.loss(torch.randn(1, 3, 48, 48), None)


def test_official_mae_checkpoint_converted_on_the_fly(tmp_path):
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(0)
    src = VisionTransformer(arch=WIDE, img_size=32, patch_size=8,
                            out_type='raw')
    src.init_weights()
    # MMPretrain -> timm names: the official MAE layout ('model', timm keys)
    timm_names = {}
    for k, v in src.state_dict().items():
        t = (k.replace('patch_embed.projection', 'patch_embed.proj')
             .replace('ffn.layers.0.0', 'mlp.fc1')
             .replace('ffn.layers.1', 'mlp.fc2'))
        t = 'blocks.' + t[7:] if t.startswith('layers.') else t
        t = t.replace('.ln1.', '.norm1.').replace('.ln2.', '.norm2.')
        t = 'norm.' + t[4:] if t.startswith('ln1.') else t
        timm_names[t] = v
    path = tmp_path / 'mae_pretrain_vit_tiny.pth'
    torch.save({'model': timm_names}, path)
    cfg = tiny_cfg()
    cfg['teachers']['mae']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), format='mae')
    model = MODELS.build(cfg)
    model.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(v, model.teachers.mae.state_dict()[k]), k
    cfg['teachers']['mae']['init_cfg']['format'] = 'mocov3'
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match='teachers.mae.init_cfg: .*mocov3'):
        model.init_weights()


def test_split_batches_give_the_whole_batch_loss():
    """Masks are keyed by sample index, so 2 x 2 images = 1 x 4 images:
    what makes N processes train like one (tests/test_reliability)."""
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    model = build()
    model.eval()  # no dropout; teachers are in eval mode anyway
    images = torch.randn(4, 3, 32, 32)
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in (7, 3, 9, 1)]
    whole = model.loss(images, samples)
    assert int(model.mask_step) == 1
    model.mask_step.zero_()
    first = model.loss(images[:2], samples[:2])
    model.mask_step.zero_()
    second = model.loss(images[2:], samples[2:])
    for name in whole:
        torch.testing.assert_close(whole[name],
                                   (first[name] + second[name]) / 2)
    # the next step draws new masks
    assert not torch.equal(model.loss(images, samples)['loss_mae'],
                           whole['loss_mae'])
