"""Bad input fails before training, naming the argument, value and allowed.

Each case is one wrong checkpoint, model argument, dataset or command line.
It must raise the expected error before any training iteration, and the
message must hold the argument's name, the bad value and what is allowed.
Everything runs in this process: the model is built with ``MODELS.build``,
the command line goes through ``mmmoma.apis.launch.train``, what
``tools/train.py`` runs.
"""
import copy
import struct
import zipfile
from pathlib import Path
from typing import Callable, NamedTuple, Tuple, Type

import numpy as np
import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from PIL import Image

import mmmoma  # noqa: F401
from mmmoma.apis import launch
from mmmoma.datasets.checks import check_samples
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import DATASETS, MODELS

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIG = ROOT / 'tests/data/configs/mae_tiny_cpu.py'
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
WIDE = dict(embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96)
NECK = dict(type='MomaNeck', decoder_embed_dims=32, decoder_depth=1,
            decoder_num_heads=2)
HEAD = dict(type='SmoothL1AlignHead')
DIST_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


class Case(NamedTuple):
    """A bad input: ``run(tmp_path)`` raises ``error``, whose message holds
    every string of ``expected`` (``{tmp}`` stands for ``tmp_path``)."""
    name: str
    error: Type[BaseException]
    expected: Tuple[str, ...]
    run: Callable[[Path], None]


CASES = []


def case(error: Type[BaseException], *expected: str):
    def register(run: Callable[[Path], None]) -> Callable[[Path], None]:
        CASES.append(Case(run.__name__, error, expected, run))
        return run

    return register


# ------------------------------------------------------------- helpers
def tiny_cfg(**overrides) -> dict:
    """A 32px MOMA: 32-d student and MoCo v3 teacher, 48-d MAE teacher."""
    cfg = dict(
        type='MomaAlgorithm',
        backbone=dict(
            type='mmpretrain.MAEViT', arch=ARCH, img_size=32, patch_size=8),
        teachers=dict(
            mocov3=dict(
                type='mmpretrain.MoCoV3ViT', arch=ARCH, img_size=32,
                patch_size=8, out_type='raw'),
            mae=dict(
                type='mmpretrain.VisionTransformer', arch=WIDE, img_size=32,
                patch_size=8, out_type='raw')),
        neck=NECK,
        head=HEAD,
        mask_ratio=0.75)
    cfg.update(overrides)
    return copy.deepcopy(cfg)


def build(cfg: dict) -> None:
    """Build the model and load its checkpoints, as Runner.train does."""
    MODELS.build(cfg).init_weights()


def pretrained(path, **kwargs) -> dict:
    return dict(type='Pretrained', checkpoint=str(path), **kwargs)


def with_teacher_ckpt(path: Path, **kwargs) -> dict:
    cfg = tiny_cfg()
    kwargs.setdefault('prefix', 'backbone.')
    cfg['teachers']['mae']['init_cfg'] = pretrained(path, **kwargs)
    return cfg


def vit_checkpoint(path: Path, arch: dict = WIDE, **kwargs) -> Path:
    """A Runner-style checkpoint of a ViT saved under ``backbone.``."""
    vit = VisionTransformer(arch=arch, img_size=32, patch_size=8,
                            out_type='raw', **kwargs)
    state = {'backbone.' + k: v for k, v in vit.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path


def official_checkpoint(path: Path, fmt: str) -> Path:
    """The three keys an official MAE / MoCo v3 file is recognised by."""
    weights = {
        'cls_token': torch.zeros(1, 1, 48),
        'pos_embed': torch.zeros(1, 17, 48),
        'patch_embed.proj.weight': torch.zeros(48, 3, 8, 8)
    }
    if fmt == 'mae':
        torch.save({'model': weights}, path)
    else:
        torch.save({'state_dict': {
            'module.base_encoder.' + k: v
            for k, v in weights.items()
        }}, path)
    return path


def write_images(folder: Path, num: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(num):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'img_{i}.png')
    return folder


def train(tmp: Path, *args: str, **options: str) -> None:
    """``tools/train.py`` on the tiny MAE config, ``options`` as
    ``--cfg-options`` (dots in keys spelled as ``__``)."""
    options = {k.replace('__', '.'): v for k, v in options.items()}
    options.setdefault('train_dataloader.dataset.data_root',
                       str(tmp / 'images'))
    options['experiment_name'] = f'bad_input_{tmp.name}'
    launch.train([
        str(TRAIN_CONFIG), '--work-dir',
        str(tmp / 'work'), *args, '--cfg-options',
        *(f'{k}={v}' for k, v in options.items())
    ])


# --------------------------------------------------------- checkpoints
@case(FileNotFoundError, 'teachers.mae.init_cfg.checkpoint=',
      '{tmp}/nope.pth', 'no such file', 'Give the path of a PyTorch')
def teacher_checkpoint_missing(tmp):
    build(with_teacher_ckpt(tmp / 'nope.pth'))


@case(IsADirectoryError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}',
      'is a folder', 'Give the path of a PyTorch checkpoint')
def teacher_checkpoint_is_a_folder(tmp):
    build(with_teacher_ckpt(tmp))


@case(FileNotFoundError, 'backbone.init_cfg.checkpoint=', '{tmp}/s.pth',
      'no such file', 'Give the path of a PyTorch checkpoint')
def student_checkpoint_missing(tmp):
    cfg = tiny_cfg()
    cfg['backbone']['init_cfg'] = pretrained(tmp / 's.pth')
    build(cfg)


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/empty.pth',
      'the file is empty', 'Allowed: a complete torch.save file')
def teacher_checkpoint_empty_file(tmp):
    (tmp / 'empty.pth').write_bytes(b'')
    build(with_teacher_ckpt(tmp / 'empty.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/junk.pth',
      'is not a PyTorch checkpoint', 'Allowed: a complete torch.save file')
def teacher_checkpoint_random_bytes(tmp):
    (tmp / 'junk.pth').write_bytes(np.random.default_rng(0).bytes(4096))
    build(with_teacher_ckpt(tmp / 'junk.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/cut.pth',
      'truncated zip archive', 'Allowed: a complete torch.save file')
def teacher_checkpoint_truncated(tmp):
    data = vit_checkpoint(tmp / 'full.pth').read_bytes()
    (tmp / 'cut.pth').write_bytes(data[:len(data) // 2])
    build(with_teacher_ckpt(tmp / 'cut.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/bad.pth',
      'the file is corrupt', 'Allowed: a complete torch.save file')
def teacher_checkpoint_corrupt_pickle(tmp):
    path = vit_checkpoint(tmp / 'good.pth')
    with zipfile.ZipFile(path) as archive:
        (entry, ) = [i for i in archive.infolist()
                     if i.filename.endswith('/data.pkl')]
    data = bytearray(path.read_bytes())
    # Garble the pickle, stored uncompressed after its local header, and
    # keep the zip archive around it intact.
    name_len, extra_len = struct.unpack(
        '<HH', data[entry.header_offset + 26:entry.header_offset + 30])
    start = entry.header_offset + 30 + name_len + extra_len
    data[start + 2:start + 42] = b'\xff' * 40
    (tmp / 'bad.pth').write_bytes(bytes(data))
    build(with_teacher_ckpt(tmp / 'bad.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/list.pth',
      'holds a list, not a state dict', 'Allowed: a checkpoint with')
def teacher_checkpoint_not_a_dict(tmp):
    torch.save([torch.zeros(3)], tmp / 'list.pth')
    build(with_teacher_ckpt(tmp / 'list.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/meta.pth',
      "teachers.mae.init_cfg.prefix=''", "not tensors (['epoch', 'meta'])",
      'Allowed: a checkpoint with')
def teacher_checkpoint_without_tensors(tmp):
    torch.save({'epoch': 3, 'meta': {'seed': 0}}, tmp / 'meta.pth')
    build(with_teacher_ckpt(tmp / 'meta.pth', prefix=''))


@case(ValueError, "teachers.mae.init_cfg.prefix='encoder.'", '{tmp}/t.pth',
      "its keys start with ['backbone.']", 'Allowed: a checkpoint')
def teacher_checkpoint_wrong_prefix(tmp):
    vit_checkpoint(tmp / 't.pth')
    build(with_teacher_ckpt(tmp / 't.pth', prefix='encoder.'))


@case(ValueError, 'teachers.mae.init_cfg', "fmt='mae' does not match",
      "top-level keys ['state_dict']", "whose 'model' entry holds",
      "Allowed formats: ('mae', 'mocov3')")
def teacher_format_mae_on_a_mocov3_file(tmp):
    path = official_checkpoint(tmp / 'linear-vit-b-300ep.pth', 'mocov3')
    build(with_teacher_ckpt(path, format='mae'))


@case(ValueError, 'teachers.mae.init_cfg', "fmt='mocov3' does not match",
      "top-level keys ['model']", "whose 'state_dict' entry holds",
      "Allowed formats: ('mae', 'mocov3')")
def teacher_format_mocov3_on_a_mae_file(tmp):
    path = official_checkpoint(tmp / 'mae_pretrain_vit_base.pth', 'mae')
    build(with_teacher_ckpt(path, format='mocov3'))


@case(ValueError, "teachers.mae.init_cfg.format='dino'",
      "allowed: ('mae', 'mocov3')")
def teacher_format_unknown(tmp):
    path = official_checkpoint(tmp / 'mae.pth', 'mae')
    build(with_teacher_ckpt(path, format='dino'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/vit-s.pth',
      'mis-shaped: cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)',
      'allowed: the weights of exactly this architecture')
def teacher_checkpoint_of_a_narrower_vit(tmp):
    vit_checkpoint(tmp / 'vit-s.pth', arch=ARCH)
    build(with_teacher_ckpt(tmp / 'vit-s.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/1-block.pth',
      'missing: layers.1.', 'allowed: the weights of exactly this')
def teacher_checkpoint_missing_blocks(tmp):
    vit_checkpoint(tmp / '1-block.pth', arch=dict(WIDE, num_layers=1))
    build(with_teacher_ckpt(tmp / '1-block.pth'))


@case(ValueError, 'teachers.mae.init_cfg.checkpoint=', '{tmp}/3-block.pth',
      'unexpected: layers.2.', 'allowed: the weights of exactly this')
def teacher_checkpoint_unexpected_blocks(tmp):
    vit_checkpoint(tmp / '3-block.pth', arch=dict(WIDE, num_layers=3))
    build(with_teacher_ckpt(tmp / '3-block.pth'))


@case(ValueError, 'backbone.init_cfg.checkpoint=', '{tmp}/wide.pth',
      'mis-shaped: cls_token: checkpoint (1, 1, 48) vs model (1, 1, 32)',
      'allowed: the weights of exactly this architecture')
def student_checkpoint_of_another_arch(tmp):
    cfg = tiny_cfg()
    cfg['backbone']['init_cfg'] = pretrained(
        vit_checkpoint(tmp / 'wide.pth'), prefix='backbone.')
    build(cfg)


# ------------------------------------------------------ model arguments
@case(ValueError, 'teachers is empty', 'teachers={}',
      'configure at least one')
def teachers_empty(tmp):
    build(tiny_cfg(teachers={}))


@case(ValueError, 'teachers.mae', "type='mmpretrain.DinoViT'",
      'Allowed: a backbone registered in MMPretrain')
def teacher_type_unknown(tmp):
    cfg = tiny_cfg()
    cfg['teachers']['mae']['type'] = 'mmpretrain.DinoViT'
    build(cfg)


@case(ValueError, 'teachers.mae', 'Arch vit-xl is not in default archs',
      "'deit-small'", 'Allowed: a backbone registered in MMPretrain')
def teacher_arch_unknown(tmp):
    cfg = tiny_cfg()
    cfg['teachers']['mae']['arch'] = 'vit-xl'
    build(cfg)


@case(ValueError, 'mask_ratio=0.0', 'open interval (0, 1)')
def mask_ratio_zero(tmp):
    build(tiny_cfg(mask_ratio=0.0))


@case(ValueError, 'mask_ratio=1.0', 'open interval (0, 1)')
def mask_ratio_one(tmp):
    build(tiny_cfg(mask_ratio=1.0))


@case(ValueError, 'mask_ratio=1.5', 'open interval (0, 1)')
def mask_ratio_above_one(tmp):
    build(tiny_cfg(mask_ratio=1.5))


@case(ValueError, "mask_ratio='0.75'", 'a number in the open interval (0, 1)')
def mask_ratio_a_string(tmp):
    build(tiny_cfg(mask_ratio='0.75'))


@case(ValueError, 'mask_ratio=0.99', 'leaves no visible patch out of 16',
      'use a ratio below 0.9375')
def mask_ratio_hides_every_patch(tmp):
    build(tiny_cfg(mask_ratio=0.99))


@case(ValueError, 'backbone.img_size=30', 'backbone.patch_size=8',
      'a multiple of the patch size')
def student_img_size_not_divisible(tmp):
    cfg = tiny_cfg()
    cfg['backbone']['img_size'] = 30
    build(cfg)


@case(ValueError, 'teachers.mae.img_size=36', 'teachers.mae.patch_size=8',
      'a multiple of the patch size')
def teacher_img_size_not_divisible(tmp):
    cfg = tiny_cfg()
    cfg['teachers']['mae']['img_size'] = 36
    build(cfg)


@case(ValueError, 'teachers.mae.patch_size=16', 'patch grid (2, 2)',
      'student grid (4, 4)', 'teacher_resample=None',
      'must use the same img_size and patch_size')
def teacher_patch_grid_differs(tmp):
    cfg = tiny_cfg(teacher_resample=None)
    cfg['teachers']['mae']['patch_size'] = 16
    build(cfg)


@case(ValueError, 'teacher_resample=\'linear\'', 'is not supported',
      "allowed: None (teachers on the student grid) or one of ('bilinear'")
def teacher_resample_unknown(tmp):
    build(tiny_cfg(teacher_resample='linear'))


@case(ValueError, "neck for teacher 'mae'", 'out_channels=64',
      'the teacher needs 48', 'set it to 48')
def neck_out_channels_not_the_teacher_width(tmp):
    build(tiny_cfg(neck=dict(mocov3=NECK, mae=dict(NECK, out_channels=64))))


@case(ValueError, "neck for teacher 'mocov3'", 'in_channels=48',
      'the student needs 32', 'set it to 32')
def neck_in_channels_not_the_student_width(tmp):
    build(tiny_cfg(neck=dict(NECK, in_channels=48)))


@case(ValueError, 'neck must be one config', "got keys ['dino', 'mae']",
      "one config per teacher ['mae', 'mocov3']")
def neck_for_an_unknown_teacher(tmp):
    build(tiny_cfg(neck=dict(mae=NECK, dino=NECK)))


@case(ValueError, "MomaNeck: mode='conv'",
      "allowed: ('decoder', 'linear', 'mlp')")
def neck_mode_unknown(tmp):
    build(tiny_cfg(neck=dict(NECK, mode='conv')))


@case(ValueError, "loss_weights names unknown teacher(s) ['dino']",
      "configured teachers: ['mocov3', 'mae']")
def loss_weights_for_an_unknown_teacher(tmp):
    build(tiny_cfg(loss_weights=dict(dino=1.0)))


@case(ValueError, "loss_weights={'mae': -1.0}", 'must be >= 0')
def loss_weight_negative(tmp):
    build(tiny_cfg(loss_weights=dict(mae=-1.0)))


@case(ValueError, 'SmoothL1AlignHead: beta=0', 'must be a number > 0')
def head_beta_zero(tmp):
    build(tiny_cfg(head=dict(HEAD, beta=0)))


@case(ValueError, "target_norm='batch_norm'",
      "allowed: ('layer_norm', 'none', 'channel', 'position', 'phi_s')")
def head_target_norm_unknown(tmp):
    build(tiny_cfg(head=dict(HEAD, target_norm='batch_norm')))


@case(ValueError, "positions='hidden'",
      "allowed: ('masked', 'visible', 'all')")
def head_positions_unknown(tmp):
    build(tiny_cfg(head=dict(HEAD, positions='hidden')))


@case(ValueError, "positions='masked'", 'mask_teacher_input=True',
      "use positions 'visible' or 'all'")
def masked_positions_with_masked_teacher_input(tmp):
    build(tiny_cfg(head=dict(HEAD, positions='masked'),
                   mask_teacher_input=True))


@case(ValueError, "positions='masked'", "neck (mode='linear')",
      "use neck mode='decoder' or positions 'visible'/'all'")
def masked_positions_with_a_visible_only_neck(tmp):
    build(tiny_cfg(head=dict(HEAD, positions='masked'),
                   neck=dict(NECK, mode='linear')))


# ------------------------------------------------------------- datasets
@case(FileNotFoundError, "FashionMNISTIdx: data_root='{tmp}/fmnist'",
      'train-images-idx3-ubyte',
      'set data_root to a folder holding the four idx files')
def fmnist_data_root_missing(tmp):
    DATASETS.build(dict(type='FashionMNISTIdx', data_root=str(tmp / 'fmnist')))


@case(FileNotFoundError, "train_dataloader.dataset.data_root='{tmp}/nope'",
      'no such folder', 'Allowed: the folder that CustomDataset reads')
def train_data_root_missing(tmp):
    train(tmp, train_dataloader__dataset__data_root=str(tmp / 'nope'))


@case(FileNotFoundError, "train_dataloader.dataset.data_root='{tmp}/images'",
      'CustomDataset has no samples', 'no .jpg/.jpeg/.png')
def train_image_folder_empty(tmp):
    (tmp / 'images').mkdir()
    train(tmp)


@case(ValueError, 'train_dataloader.dataset', "data_root='{tmp}/images'",
      'CustomDataset', "has no samples: its ann_file='train.txt' is empty",
      'Allowed: a dataset with at least one sample')
def train_annotation_file_empty(tmp):
    write_images(tmp / 'images')
    (tmp / 'images' / 'train.txt').write_text('\n')
    train(tmp, train_dataloader__dataset__ann_file='train.txt')


@case(FileNotFoundError, "train_dataloader.dataset.ann_file='train.txt'",
      "no such file under data_root='{tmp}/images'",
      'Allowed: an existing annotation file')
def train_annotation_file_missing(tmp):
    write_images(tmp / 'images')
    train(tmp, train_dataloader__dataset__ann_file='train.txt')


@case(ValueError, 'train_dataloader.dataset: FashionMNISTIdx',
      "data_root='{tmp}'", 'has no samples',
      'Allowed: a dataset with at least one sample')
def train_dataset_subset_empty(tmp):
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    header = b''.join(v.to_bytes(4, 'big') for v in (0x803, 2, 28, 28))
    (tmp / 'train-images-idx3-ubyte').write_bytes(header + images.tobytes())
    header = b''.join(v.to_bytes(4, 'big') for v in (0x801, 2))
    (tmp / 'train-labels-idx1-ubyte').write_bytes(header + bytes(2))
    dataset = DATASETS.build(
        dict(type='FashionMNISTIdx', data_root=str(tmp), indices=[]))
    # What tools/train.py runs on the built train dataset.
    check_samples(dataset, 'train_dataloader.dataset')


@case(ValueError, "train_dataloader.dataset.data_root='{tmp}/images'",
      '{tmp}/images/0_broken.png', 'cannot be decoded',
      'Allowed: files that LoadImageFromFile can read')
def train_image_unreadable(tmp):
    write_images(tmp / 'images')
    (tmp / 'images' / '0_broken.png').write_bytes(b'\x89PNG\r\n' + bytes(64))
    train(tmp)


# --------------------------------------------------------- command line
@case(SystemExit, 'argument --launcher', "'foo'", 'none', 'pytorch',
      'slurm')
def launcher_unknown(tmp):
    train(tmp, '--launcher', 'foo')


@case(SystemExit, '--launcher pytorch', "['RANK', 'WORLD_SIZE'",
      'Allowed: --launcher none for one process', 'torchrun')
def launcher_pytorch_outside_torchrun(tmp):
    train(tmp, '--launcher', 'pytorch')


@case(SystemExit, "--resume '{tmp}/epoch_9.pth'", 'no such file',
      'Allowed: a checkpoint', '--resume without a path')
def resume_checkpoint_missing(tmp):
    train(tmp, '--resume', str(tmp / 'epoch_9.pth'))


if not torch.cuda.is_available():

    @case(SystemExit, '--amp', 'needs a GPU', 'no CUDA', 'Run without --amp')
    def amp_without_a_gpu(tmp):
        train(tmp, '--amp')


@pytest.fixture
def no_training(monkeypatch):
    """Record every training iteration that would run."""
    iterations = []
    for loop in (EpochBasedTrainLoop, IterBasedTrainLoop):
        monkeypatch.setattr(loop, 'run_iter',
                            lambda self, *args: iterations.append(args))
    return iterations


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_before_training(case, tmp_path, capsys, monkeypatch,
                                         no_training):
    for key in DIST_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(case.error) as info:
        case.run(tmp_path)
    # argparse writes its message to stderr before it exits.
    message = f'{info.value}\n{capsys.readouterr().err}'
    for fragment in case.expected:
        assert fragment.replace('{tmp}', str(tmp_path)) in message, message
    assert not no_training
    assert not list((tmp_path / 'work').rglob('*.pth'))


def test_at_least_twenty_distinct_cases():
    assert len({c.name for c in CASES}) == len(CASES) >= 20
