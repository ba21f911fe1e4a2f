"""The segmentation-v2 configs train 2 iterations on generated mosaics
through tools/train.py and test through tools/test.py: the fine-tunes
(BN + 1x1 head with layer decay, UperNet) move the backbone, the linear
probe leaves it exactly as loaded."""
import json
import sys
from pathlib import Path

import pytest
import torch

from mmmoma.datasets.fmnist_mosaics import make_mosaics

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'
STUDY = REPO_ROOT / 'configs' / 'study'
FINETUNE = STUDY / ('linear-ft_vit-tiny-p4_moma-pre_1xb16-1k_'
                    'fmnist-mosaics-84x84.py')
UPERNET = STUDY / ('upernet_vit-tiny-p4_moma-pre_1xb16-300i_'
                   'fmnist-mosaics-84x84.py')
LINEAR = STUDY / ('linear_vit-tiny-p4_moma-pre_1xb16-300i_'
                  'fmnist-mosaics-84x84.py')


@pytest.fixture(scope='module')
def inputs(fake_fmnist, tmp_path_factory) -> dict:
    """4 + 2 mosaics and a study-sized backbone checkpoint (28 px images,
    MMPretrain's layout under ``backbone.``)."""
    import mmmoma  # noqa: F401
    from mmmoma.models import MomaViT
    root = tmp_path_factory.mktemp('mosaic_configs')
    make_mosaics(str(root / 'mosaics'), str(fake_fmnist), num_train=4,
                 num_val=2)
    torch.manual_seed(0)
    vit = MomaViT(
        arch=dict(embed_dims=128, num_layers=4, num_heads=4,
                  feedforward_channels=512),
        img_size=28, patch_size=4)
    vit.init_weights()
    ckpt = root / 'student.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in vit.state_dict().items()}}, ckpt)
    data = str(root / 'mosaics')
    options = [f'model.backbone.init_cfg.checkpoint={ckpt}'] + [
        f'{split}_dataloader.dataset.data_root={data}'
        for split in ('train', 'val', 'test')
    ]
    return dict(root=root, ckpt=ckpt, options=options)


def train(run_tool, config: Path, inputs: dict, name: str) -> Path:
    work_dir = inputs['root'] / name
    run_tool([
        sys.executable, TOOLS / 'train.py', config, '--work-dir', work_dir,
        '--cfg-options', *inputs['options'], 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=2', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ], cwd=inputs['root'])
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [r['iter'] for r in records if 'loss' in r] == [1, 2]
    assert 0 <= records[-1]['mIoU'] <= 100
    return work_dir


def backbone_changes(work_dir: Path, ckpt: Path) -> dict:
    """Per backbone weight (pos_embed aside: resized on load), whether the
    trained checkpoint differs from the loaded one."""
    before = torch.load(ckpt, weights_only=True)['state_dict']
    after = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    # the UperNet backbone has no final norm (final_norm=False): the
    # checkpoint's ln1 is the only weight the model does not hold
    assert {k for k in before if k.startswith('backbone.')} - set(after) <= {
        'backbone.ln1.weight', 'backbone.ln1.bias'}
    return {k: not torch.equal(before[k], after[k])
            for k in before if k in after and k != 'backbone.pos_embed'}


@pytest.mark.parametrize('config', [FINETUNE, UPERNET],
                         ids=['linear-ft', 'upernet'])
def test_finetune_trains_the_backbone_and_tests(run_tool, inputs, config):
    work_dir = train(run_tool, config, inputs, config.name.split('_')[0])
    changed = backbone_changes(work_dir, inputs['ckpt'])
    assert changed['backbone.layers.0.attn.qkv.weight']
    assert changed['backbone.patch_embed.projection.weight']
    # layer decay: the head at the base lr, each block below at 0.9 x more
    groups = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                        weights_only=False)['optimizer']['param_groups']
    scales = sorted({round(g['lr_scale'], 6) for g in groups}, reverse=True)
    rate = 0.9
    assert scales == [round(rate**d, 6) for d in range(6)], scales
    out = run_tool([
        sys.executable, TOOLS / 'test.py', config, work_dir / 'iter_2.pth',
        '--work-dir', work_dir / 'test', '--cfg-options', *inputs['options']
    ], cwd=inputs['root']).stdout
    assert 'mIoU' in out and 'Ankle boot' in out and 'background' in out


def test_linear_probe_leaves_the_backbone_as_loaded(run_tool, inputs):
    work_dir = train(run_tool, LINEAR, inputs, 'linear')
    changed = backbone_changes(work_dir, inputs['ckpt'])
    assert not any(changed.values()), [k for k, v in changed.items() if v]
    after = torch.load(work_dir / 'iter_2.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert 'decode_head.conv_seg.weight' in after
    assert not any(k.startswith(('neck.', 'auxiliary_head.')) for k in after)
