"""A corrupt or truncated data file fails with one message naming it.

Fashion-MNIST idx files (gzipped or not) cut short, failing their CRC,
with a wrong magic number or the wrong size; annotation lists that are not
text or not ``path label`` lines; a damaged JSON file the study reads.
Each fails where the file is read, before the first training iteration,
with the file and what is wrong with it in the message.
"""
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from reliability_utils import ROOT, run

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import launch
from mmmoma.apis.common import read_json
from mmmoma.datasets import FashionMNISTIdx
from mmmoma.datasets.fashion_mnist import DEFAULT_ROOT

MAE_CONFIG = ROOT / 'tests/data/configs/mae_tiny_cpu.py'
IMAGES = 'train-images-idx3-ubyte'
LABELS = 'train-labels-idx1-ubyte'


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """An idx file: magic, one big-endian size per dimension, the data."""
    header = magic.to_bytes(4, 'big') + b''.join(
        d.to_bytes(4, 'big') for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(root: Path, num: int = 8, gz: bool = True) -> dict:
    """A valid train split of ``num`` 28x28 images; the two file paths."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {}
    for name, data in ((IMAGES,
                        idx_bytes(0x803,
                                  rng.integers(0, 256, (num, 28, 28)))),
                       (LABELS, idx_bytes(0x801, np.arange(num) % 10))):
        path = root / (name + '.gz' if gz else name)
        if gz:
            with gzip.open(path, 'wb') as f:
                f.write(data)
        else:
            path.write_bytes(data)
        files[name] = path
    return files


def cut_gzip(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def bad_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    path.write_bytes(bytes(data))


def raw(edit):
    def apply(path: Path) -> None:
        path.write_bytes(edit(path.read_bytes()))
    return apply


# (name, gzipped?, which file, damage, what the message says)
DAMAGE = [
    ('gzip-truncated', True, IMAGES, cut_gzip,
     'the gzip stream is truncated'),
    ('gzip-crc', True, LABELS, bad_crc, 'not a valid gzip file (CRC check'),
    ('gzip-not-gzip', True, IMAGES, raw(lambda d: b'not gzip' + d),
     'not a valid gzip file'),
    ('magic', False, IMAGES, raw(lambda d: (0x801).to_bytes(4, 'big') + d[4:]),
     'magic number 0x00000801, expected magic number 0x00000803'),
    ('labels-as-images', False, LABELS,
     raw(lambda d: (0x803).to_bytes(4, 'big') + d[4:]),
     'magic number 0x00000803, expected magic number 0x00000801; not a '
     'Fashion-MNIST label idx file'),
    ('empty', False, LABELS, raw(lambda d: b''),
     'the file holds only 0 bytes'),
    ('header-cut', False, IMAGES, raw(lambda d: d[:10]),
     'the header is cut short (10 of 16 bytes)'),
    ('data-cut', False, IMAGES, raw(lambda d: d[:-100]),
     'the header says (8, 28, 28) (6272 values), but the file holds 6172; '
     'the file is truncated'),
    ('extra-bytes', False, LABELS, raw(lambda d: d + b'\0\0'),
     'the header says (8,) (8 values), but the file holds 10; extra bytes'),
]


@pytest.mark.parametrize('gz,which,damage,expected',
                         [d[1:] for d in DAMAGE],
                         ids=[d[0] for d in DAMAGE])
def test_damaged_idx_file_is_named(tmp_path, gz, which, damage, expected):
    path = write_split(tmp_path, gz=gz)[which]
    FashionMNISTIdx(data_root=str(tmp_path))  # whole, it loads
    damage(path)
    with pytest.raises(ValueError) as info:
        FashionMNISTIdx(data_root=str(tmp_path))
    message = str(info.value)
    assert message.startswith(f'{path}: '), message
    assert expected in message, message
    assert 'Allowed: a complete Fashion-MNIST idx file' in message


@pytest.mark.needs_fmnist
def test_truncated_copy_of_the_real_file_is_named(tmp_path):
    for stem in ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
        shutil.copy(Path(DEFAULT_ROOT) / f'{stem}.gz', tmp_path)
    cut = tmp_path / 't10k-labels-idx1-ubyte.gz'
    cut_gzip(cut)
    with pytest.raises(ValueError) as info:
        FashionMNISTIdx(data_root=str(tmp_path), split='test')
    message = str(info.value)
    assert message.startswith(f'{cut}: the gzip stream is truncated ('), (
        message)
    assert 'Compressed file ended before the end-of-stream marker' in message


def test_train_stops_before_the_first_iteration(tmp_path):
    """tools/train.py on a Fashion-MNIST copy cut short by a failed copy."""
    files = write_split(tmp_path / 'fmnist', num=16)
    cut_gzip(files[IMAGES])
    config = tmp_path / 'mae_tiny_fmnist.py'
    config.write_text(
        f'_base_ = {str(MAE_CONFIG)!r}\n'
        'train_dataloader = dict(dataset=dict(_delete_=True, '
        f"type='FashionMNISTIdx', data_root={str(tmp_path / 'fmnist')!r}, "
        "with_label=False, img_size=32, pipeline=[dict(type='PackInputs')]))"
        '\n')
    work_dir = tmp_path / 'work'
    proc = run([
        sys.executable, ROOT / 'tools/train.py', config, '--work-dir',
        work_dir
    ], env={'PYTHONPATH': str(ROOT)})
    assert proc.returncode != 0
    out = proc.stdout
    assert f'{files[IMAGES]}: the gzip stream is truncated' in out, (
        out[-3000:])
    assert 'Epoch(train)' not in out
    assert not list(work_dir.rglob('*.pth'))


def train_with_ann_file(tmp: Path, text: bytes, **options) -> None:
    images = tmp / 'images'
    images.mkdir()
    (images / 'img_0.png').write_bytes(b'')
    (images / 'train.txt').write_bytes(text)
    options = {
        'train_dataloader.dataset.data_root': str(images),
        'train_dataloader.dataset.ann_file': 'train.txt',
        **{k.replace('__', '.'): v
           for k, v in options.items()}
    }
    launch.train([
        str(MAE_CONFIG), '--work-dir',
        str(tmp / 'work'), '--cfg-options',
        *(f'{k}={v}' for k, v in options.items())
    ])


@pytest.mark.parametrize('text,with_label,expected', [
    (b'img_0.png 1\n\xff\xfe\x00junk\n', 'True',
     "line 2 is not UTF-8 text (byte b'\\xff' at offset 12)"),
    (b'img_0.png 1\nimg_0.png\n', 'True',
     "line 2 is 'img_0.png', which CustomDataset cannot read. Allowed: "
     '"path label" lines with an integer label'),
    (b'img_0.png 1\n\nimg_0.png 2\n', 'True', "line 2 is ''"),
    (b'img_0.png cat\n', 'True', "line 1 is 'img_0.png cat'"),
    (b'\x89PNG\r\n\x1a\n\x00\x00', 'False',
     "line 1 is not UTF-8 text (byte b'\\x89' at offset 0)"),
], ids=['binary', 'no-label', 'blank-line', 'word-label', 'png-as-list'])
def test_bad_annotation_list_is_named(tmp_path, monkeypatch, text,
                                      with_label, expected):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError) as info:
        train_with_ann_file(
            tmp_path, text,
            train_dataloader__dataset__with_label=with_label)
    message = str(info.value)
    path = tmp_path / 'images' / 'train.txt'
    assert (f"train_dataloader.dataset.ann_file='train.txt' ({path}): "
            f'{expected}') in message, message
    assert not (tmp_path / 'work').exists() or not list(
        (tmp_path / 'work').rglob('*.pth'))


def test_damaged_json_is_named(tmp_path):
    path = tmp_path / 'meta.json'
    path.write_text('{"splits": {"training": ')  # cut short
    with pytest.raises(ValueError) as info:
        read_json(str(path))
    message = str(info.value)
    assert message.startswith(f'{path}: not a complete JSON file '
                              '(JSONDecodeError: Expecting value')
    assert 'delete the file to have it written again' in message
