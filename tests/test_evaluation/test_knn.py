"""Weighted k-NN: hand-computed votes, feature extraction, the hook."""
import math
import socket

import numpy as np
import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.engine import KNNEvalHook
from mmmoma.evaluation import (extract_features, knn_accuracy,
                               knn_classify, knn_evaluate, pool_features)

TINY = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)


# ------------------------------------------------------ the pure function
def test_knn_votes_by_hand():
    # unit vectors; the query (0.6, 0.8) has cosine 0.6, 0.96, 0.8, -0.6
    bank = torch.tensor([[1., 0.], [.8, .6], [0., 1.], [-1., 0.]])
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[.6, .8]])
    scores = knn_classify(bank, labels, query, num_classes=2, k=3,
                          temperature=0.1)
    # the 3 nearest: 0.96 (class 0), 0.8 (class 1), 0.6 (class 0)
    expected = torch.tensor([[math.exp(9.6) + math.exp(6.), math.exp(8.)]])
    torch.testing.assert_close(scores, expected)


def test_weighting_beats_majority_and_temperature_matters():
    # one very close neighbour of class 1 against two far ones of class 0
    bank = torch.tensor([[1., 0.], [0., 1.], [0., -1.]])
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[.99, math.sqrt(1 - .99**2)]])
    sharp = knn_classify(bank, labels, query, 2, k=3, temperature=0.07)
    flat = knn_classify(bank, labels, query, 2, k=3, temperature=100.)
    assert sharp.argmax().item() == 1  # exp(.99/.07) >> 2 exp(~0/.07)
    assert flat.argmax().item() == 0  # nearly a plain 2-vs-1 vote
    s = math.sqrt(1 - .99**2)
    torch.testing.assert_close(
        flat,
        torch.tensor([[math.exp(s / 100.) + math.exp(-s / 100.),
                       math.exp(.99 / 100.)]]))


def test_features_are_normalised_and_k_is_clamped():
    bank = torch.tensor([[1., 0.], [0., 1.]])
    labels = torch.tensor([0, 1])
    query = torch.tensor([[3., 1.]])  # cosine 3/sqrt(10), 1/sqrt(10)
    scores = knn_classify(bank * 7, labels, query, 2, k=50, temperature=0.5)
    c = 1 / math.sqrt(10)
    torch.testing.assert_close(
        scores, torch.tensor([[math.exp(3 * c / .5), math.exp(c / .5)]]))
    with pytest.raises(ValueError, match='k=0'):
        knn_classify(bank, labels, query, 2, k=0)
    with pytest.raises(ValueError, match='temperature'):
        knn_classify(bank, labels, query, 2, temperature=0)


def test_knn_accuracy_top1_top5():
    # 6 classes on a circle; each query sits next to its own class
    angles = torch.arange(6) * (2 * math.pi / 6)
    bank = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.arange(6)
    queries = torch.stack([(angles + .1).cos(), (angles + .1).sin()], 1)
    truth = torch.tensor([0, 1, 2, 3, 4, 0])  # the last one is wrong
    acc = knn_accuracy(bank, labels, queries, truth, k=2, temperature=.1)
    assert acc['top1'] == pytest.approx(500 / 6)
    # the wrong query's second neighbour is its labelled class 0
    assert acc['top5'] == pytest.approx(100.)
    assert 'top5' not in knn_accuracy(bank[:4], labels[:4] % 3, queries[:4],
                                      truth[:4] % 3, topk=(1, 5))


def test_pool_features():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    torch.testing.assert_close(pool_features(tokens, 'cls_token'),
                               tokens[:, 0])
    torch.testing.assert_close(pool_features(tokens, 'avg_patch'),
                               tokens[:, 1:].mean(1))
    assert pool_features(tokens, 'cls_avg_patch').shape == (2, 6)
    pooled = torch.randn(2, 5)
    assert pool_features(pooled, 'avg_patch') is pooled
    fmap = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(pool_features(fmap), fmap.mean((2, 3)))
    with pytest.raises(ValueError, match='feature'):
        pool_features(tokens, 'gem')


# ------------------------------------------------------ models and the hook
def _write_fake_fmnist(root):
    """Two easy classes (dark / bright images) in the idx format."""
    import gzip
    rng = np.random.default_rng(0)
    for stem, n in (('train', 40), ('t10k', 20)):
        labels = np.arange(n) % 2
        images = (np.where(labels[:, None, None] == 1, 200, 30)
                  + rng.integers(0, 20, (n, 28, 28)))
        images = images.astype(np.uint8)
        head = (0x803).to_bytes(4, 'big') + b''.join(
            v.to_bytes(4, 'big') for v in (n, 28, 28))
        with gzip.open(root / f'{stem}-images-idx3-ubyte.gz', 'wb') as f:
            f.write(head + images.tobytes())
        with gzip.open(root / f'{stem}-labels-idx1-ubyte.gz', 'wb') as f:
            f.write((0x801).to_bytes(4, 'big') + n.to_bytes(4, 'big') +
                    labels.astype(np.uint8).tobytes())


@pytest.fixture
def fake_root(tmp_path):
    _write_fake_fmnist(tmp_path)
    return str(tmp_path)


def _loader(root, split, batch_size=8):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='FashionMNISTIdx',
            data_root=root,
            split=split,
            pipeline=[dict(type='PackInputs')]))


def _mae(**backbone):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(
                type='MAEViT', arch=TINY, img_size=28, patch_size=7,
                **backbone),
            neck=dict(
                type='MAEPretrainDecoder',
                num_patches=16,
                patch_size=7,
                embed_dim=32,
                decoder_embed_dim=32,
                decoder_depth=1,
                decoder_num_heads=2),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=7,
                loss=dict(type='PixelReconstructionLoss', criterion='L2')),
            data_preprocessor=dict(
                type='SelfSupDataPreprocessor',
                mean=[127.5] * 3,
                std=[127.5] * 3)))
    model.init_weights()
    return model


def test_extract_features_eval_no_grad_restores_mode(fake_root):
    from mmengine.runner import Runner
    model = _mae()
    model.train()
    loader = Runner.build_dataloader(_loader(fake_root, 'test'))
    feats, labels = extract_features(model, loader, 'cls_token')
    assert feats.shape == (20, 32)
    assert labels.tolist() == [i % 2 for i in range(20)]
    assert model.training and model.backbone.training
    assert all(p.grad is None for p in model.parameters())
    # the same as the backbone's class token on the normalised images
    batch = next(iter(loader))
    data = model.data_preprocessor(batch, False)
    model.eval()
    with torch.no_grad():
        direct = model.backbone(data['inputs'], mask=None)[0][:, 0]
    torch.testing.assert_close(feats[:8], direct)


def test_extract_features_unwraps_ddp(fake_root):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.runner import Runner
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)
    try:
        model = _mae()
        wrapped = MMDistributedDataParallel(module=model, device_ids=None)
        loader = Runner.build_dataloader(_loader(fake_root, 'test'))
        feats, _ = extract_features(wrapped, loader, 'avg_patch')
        plain, _ = extract_features(model, loader, 'avg_patch')
        torch.testing.assert_close(feats, plain)
        assert wrapped.training
    finally:
        dist.destroy_process_group()


def test_knn_evaluate_separates_easy_classes(fake_root):
    from mmengine.runner import Runner
    model = _mae()
    results = knn_evaluate(model, Runner.build_dataloader(
        _loader(fake_root, 'train')), Runner.build_dataloader(
            _loader(fake_root, 'test')), k=5, feature='avg_patch')
    assert results['top1'] == 100.0
    assert results['num_train'] == 40 and results['num_val'] == 20


def test_hook_logs_during_and_after_training(fake_root, tmp_path):
    import json
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config(
        dict(
            default_scope='mmpretrain',
            model=dict(
                type='MAE',
                backbone=dict(
                    type='MAEViT', arch=TINY, img_size=28, patch_size=7),
                neck=dict(
                    type='MAEPretrainDecoder',
                    num_patches=16,
                    patch_size=7,
                    embed_dim=32,
                    decoder_embed_dim=32,
                    decoder_depth=1,
                    decoder_num_heads=2),
                head=dict(
                    type='MAEPretrainHead',
                    patch_size=7,
                    loss=dict(
                        type='PixelReconstructionLoss', criterion='L2'))),
            train_dataloader=dict(
                _loader(fake_root, 'train', 16),
                sampler=dict(type='DefaultSampler', shuffle=True)),
            optim_wrapper=dict(
                type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
            train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=3),
            custom_hooks=[
                dict(
                    type='KNNEvalHook',
                    train_dataloader=_loader(fake_root, 'train'),
                    val_dataloader=_loader(fake_root, 'test'),
                    k=3,
                    temperature=0.1,
                    interval=2,
                    eval_at_start=True)
            ],
            default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
            work_dir=str(tmp_path)))
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = [h for h in runner.hooks if isinstance(h, KNNEvalHook)][0]
    # at start, after epoch 2, and after training (epoch 3 was not an
    # interval epoch)
    assert [h['epoch'] for h in hook.history] == [0, 2, 3]
    assert (runner.message_hub.get_scalar('knn/top1').current()
            == hook.history[-1]['top1'])
    scalars = [
        json.loads(line)
        for line in (tmp_path.glob('*/vis_data/scalars.json').__next__()
                     ).read_text().splitlines()
    ]
    assert sum('knn/top1' in s for s in scalars) == 3
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'k-NN (cls_token, k=3, T=0.1, 40 bank / 20 queries) epoch 2' in log
    assert runner.model.training


def test_hook_arguments_fail_early():
    with pytest.raises(ValueError, match='k=0'):
        KNNEvalHook(dict(), dict(), k=0)
    with pytest.raises(ValueError, match='temperature'):
        KNNEvalHook(dict(), dict(), temperature=-1)
    with pytest.raises(ValueError, match="feature='mean'"):
        KNNEvalHook(dict(), dict(), feature='mean')
    with pytest.raises(ValueError, match='interval'):
        KNNEvalHook(dict(), dict(), interval=-1)
