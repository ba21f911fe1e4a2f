import pytest
import torch

from mmmoma.evaluation import fit_linear_probe, linear_probe, probe_scores


def _blobs(num_per_class: int, centres: torch.Tensor, noise: float,
           seed: int):
    """Gaussian blobs around ``centres`` (K, C); labels 0..K-1."""
    gen = torch.Generator().manual_seed(seed)
    feats = centres.repeat_interleave(num_per_class, dim=0)
    feats = feats + noise * torch.randn(feats.shape, generator=gen)
    labels = torch.arange(len(centres)).repeat_interleave(num_per_class)
    return feats, labels


def test_separable_blobs_reach_100_percent():
    centres = torch.tensor([[4., 0., 0.], [0., 4., 0.], [0., 0., 4.],
                            [-4., -4., -4.]])
    train = _blobs(50, centres, 0.3, seed=0)
    test = _blobs(20, centres, 0.3, seed=1)
    results = linear_probe(*train, *test)
    assert results['top1'] == 100.0 and results['train_top1'] == 100.0
    assert 'top5' not in results  # 4 classes: top-5 is meaningless


def test_hand_checkable_threshold_on_one_feature():
    """Label = x0 > 0; channel 1 is noise. The fitted boundary must sit
    between the two train clusters (x0 = -1 and x0 = +1), so test points at
    -0.5 and +0.5 go to their side; a probe that ignored the features
    would score 50%."""
    train_feats = torch.tensor([[-1., 3.], [-1., -3.], [1., 3.], [1., -3.]])
    train_labels = torch.tensor([0, 0, 1, 1])
    test_feats = torch.tensor([[-0.5, 3.], [0.5, 3.], [-0.5, -3.],
                               [0.5, -3.]])
    test_labels = torch.tensor([0, 1, 0, 1])
    results = linear_probe(train_feats, train_labels, test_feats,
                           test_labels)
    assert results['top1'] == 100.0
    probe = fit_linear_probe(train_feats, train_labels, 2)
    # the decision depends on x0, not on the noise channel
    direction = probe['weight'][1] - probe['weight'][0]
    assert direction[0] > 0 and direction[0].abs() > 10 * direction[1].abs()
    # swapping the test labels gives 0%: the prediction comes from features
    assert linear_probe(train_feats, train_labels, test_feats,
                        1 - test_labels)['top1'] == 0.0


def test_uninformative_features_give_chance():
    """Features independent of the label: test accuracy near 1 / K."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2000, 8, generator=gen)
    labels = torch.randint(0, 4, (2000, ), generator=gen)
    results = linear_probe(feats[:1000], labels[:1000], feats[1000:],
                           labels[1000:])
    assert 15 < results['top1'] < 35


def test_deterministic_and_uses_only_train_labels():
    centres = torch.randn(5, 16, generator=torch.Generator().manual_seed(3))
    train = _blobs(30, centres, 1.0, seed=4)
    test = _blobs(10, centres, 1.0, seed=5)
    first = fit_linear_probe(*train, 5, max_iter=50)
    again = fit_linear_probe(*train, 5, max_iter=50)
    for key in first:
        assert torch.equal(first[key], again[key]), key
    a = linear_probe(*train, *test, max_iter=50)
    b = linear_probe(*train, test[0], test[1].flip(0), max_iter=50)
    # the test labels only score the predictions, they do not change them
    assert a['train_top1'] == b['train_top1']
    predicted = probe_scores(first, test[0]).argmax(1)
    assert a['top1'] == 100.0 * (predicted == test[1]).double().mean()
    assert b['top1'] == 100.0 * (predicted == test[1].flip(0)).double().mean()


def test_weight_decay_shrinks_weights():
    centres = torch.tensor([[2., 0.], [-2., 0.]])
    train = _blobs(20, centres, 0.5, seed=0)
    weak = fit_linear_probe(*train, 2, weight_decay=1e-4)
    strong = fit_linear_probe(*train, 2, weight_decay=1.0)
    assert strong['weight'].norm() < weak['weight'].norm()


@pytest.mark.parametrize('kwargs,word', [
    (dict(weight_decay=-1.0), 'weight_decay'),
    (dict(max_iter=0), 'max_iter'),
])
def test_bad_arguments(kwargs, word):
    feats, labels = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=word):
        linear_probe(feats, labels, feats, labels, **kwargs)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match='train_labels must be'):
        linear_probe(torch.randn(4, 2), torch.tensor([0, 1]),
                     torch.randn(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='channels'):
        linear_probe(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]),
                     torch.randn(2, 3), torch.tensor([0, 1]))
