"""TargetStatsHook: one pass of the teachers sets fixed head statistics."""
import copy
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

from mmmoma.engine import TargetStatsHook

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


class Images(Dataset):
    """Generated 32x32 images with their sample_idx, as MMEngine packs."""

    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 255, (n, 3, 32, 32), generator=g,
                                    dtype=torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return dict(inputs=self.images[i],
                    data_samples=DataSample(metainfo=dict(sample_idx=i)))


def model(target_stats='fixed', norm='channel'):
    torch.manual_seed(0)
    teacher = dict(type='mmpretrain.VisionTransformer', arch=dict(ARCH),
                   img_size=32, patch_size=8, out_type='raw')
    out = MODELS.build(
        dict(type='MomaAlgorithm',
             backbone=dict(type='mmpretrain.MAEViT', arch=ARCH, img_size=32,
                           patch_size=8),
             teachers=dict(a=teacher, b=copy.deepcopy(teacher)),
             neck=dict(type='MomaNeck', decoder_embed_dims=32,
                       decoder_depth=1, decoder_num_heads=2),
             head=dict(type='SmoothL1AlignHead', target_norm=norm,
                       target_stats=target_stats),
             data_preprocessor=dict(type='SelfSupDataPreprocessor',
                                    mean=[127.5] * 3, std=[64.0] * 3,
                                    to_rgb=False)))
    out.init_weights()
    return out


def runner(net, n=40, batch=4):
    loader = DataLoader(Images(n), batch_size=batch, shuffle=True,
                        collate_fn=default_collate)
    return SimpleNamespace(model=net, train_dataloader=loader)


def test_hook_sets_the_statistics_of_its_subset_and_keeps_the_generators():
    net = model()
    run = runner(net)
    hook = TargetStatsHook(num_batches=3, seed=1)
    assert [k for k, _ in hook.pending(net)] == ['a', 'b']
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    hook.before_train(run)
    after = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    assert after == (random.random(), np.random.rand(), torch.rand(1))
    # by hand: the teachers over the same 12 samples
    order = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    batch = default_collate([run.train_dataloader.dataset[i]
                            for i in order[:12].tolist()])
    images = net.data_preprocessor(batch, True)['inputs']
    for name in ('a', 'b'):
        target = net.teacher_targets(name, images)[0][name].double()
        norm = net.heads[name].norm
        torch.testing.assert_close(norm.mean[0], target[:, 0].mean(0))
        torch.testing.assert_close(norm.mean[1], target[:, 1:].mean((0, 1)))
        torch.testing.assert_close(
            norm.var[1], target[:, 1:].reshape(-1, 32).var(0,
                                                           unbiased=False))
    assert hook.pending(net) == []
    before = net.heads.a.norm.mean.clone()
    hook.before_train(run)  # a resumed run: nothing to do
    assert torch.equal(net.heads.a.norm.mean, before)
    # training leaves fixed statistics alone
    net.train()
    net.loss(images, batch['data_samples'])
    assert torch.equal(net.heads.a.norm.mean, before)


def test_hook_ignores_heads_without_fixed_statistics():
    for net in (model(target_stats='ema'), model(norm='layer_norm')):
        assert TargetStatsHook.pending(net) == []
        TargetStatsHook().before_train(runner(net))  # no pass, no error


def test_bad_num_batches_is_named():
    with pytest.raises(ValueError, match='num_batches=0'):
        TargetStatsHook(num_batches=0)
