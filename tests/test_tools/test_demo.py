"""tools/demo.py --smoke (mmmoma.apis.demo): the whole chain on real
Fashion-MNIST, on CPU."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmmoma  # noqa: F401
from mmmoma.apis.common import tool_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_fmnist  # the demo trains on it
ROWS = ['random', 'mae', 'mocov3', 'moma']


def _demo(work: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable,
         str(ROOT / 'tools/demo.py'), '--smoke', '--work-dir',
         str(work)],
        cwd=work.parent,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo') / 'work'
    return work, _demo(work).stdout


def test_table_and_results(smoke):
    work, out = smoke
    results = json.loads((work / 'results.json').read_text())
    assert results['preset'] == 'smoke'
    assert [r['name'] for r in results['rows']] == ROWS
    for row in results['rows']:
        assert 0 <= row['knn_top1'] <= 100 and math.isfinite(row['knn_top1'])
        assert row['knn_top1'] <= row['knn_top5'] <= 100
    trained = {r['name']: r for r in results['rows'][1:]}
    epochs = dict(mae=1, mocov3=1, moma=2)  # the smoke preset's
    for name, row in trained.items():
        assert row['epochs'] == epochs[name]
        assert row['images_seen'] == 512 * epochs[name]
        assert row['train_seconds'] > 0
    assert results['rows'][0]['images_seen'] == 0
    # the printed table is the one in results.md
    md = (work / 'results.md').read_text()
    table = md[md.index('| model'):].strip()
    assert table in out
    assert table.startswith('| model | epochs | images seen | k-NN top-1 (%) '
                            '| wall time |')
    assert len([line for line in table.splitlines()
                if line.startswith('| ')]) == 1 + len(ROWS)
    # progress lines with an ETA
    assert '| ETA ' in out and 'step 3/4' in out


def test_monitoring_hook_ran_in_every_step(smoke):
    work, _ = smoke
    for name in ('mae', 'mocov3', 'moma'):
        scalars = next((work / name).glob('*/vis_data/scalars.json'))
        assert 'knn/top1' in scalars.read_text()


def test_training_curves_of_every_step(smoke):
    work, out = smoke
    md = (work / 'results.md').read_text()
    rows = json.loads((work / 'results.json').read_text())['rows']
    assert rows[0]['curves'] is None  # random init: not trained
    for row in rows[1:]:
        png = work / row['name'] / 'curves.png'
        assert row['curves'] == str(png)
        assert png.read_bytes().startswith(b'\x89PNG')
        # linked below the table, relative to results.md
        assert f'[{row["model"]}]({row["name"]}/curves.png)' in md
    assert md.index('curves.png') > md.index('| MOMA student')


def test_published_checkpoints_load_strictly_as_teachers(smoke):
    """The MOMA step loaded steps 1-2 through init_cfg; redo it here."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    work, _ = smoke
    ckpts = {n: work / 'checkpoints' / f'{n}.pth' for n in ('mae', 'mocov3')}
    states = {
        n: torch.load(p, weights_only=True)['state_dict']
        for n, p in ckpts.items()
    }
    # MoCo v3 keeps its momentum encoder outside `backbone.`
    assert any(k.startswith('momentum_encoder.') for k in states['mocov3'])
    cfg = Config.fromfile(
        str(ROOT / 'configs/demo/'
            'moma_vit-mini-p4_moco-mae_1xb128-coslr_fmnist.py'))
    for name, path in ckpts.items():
        cfg.model.teachers[name].init_cfg = dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.')
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.init_weights()
    for name, state in states.items():
        for key, value in model.teachers[name].state_dict().items():
            assert torch.equal(value, state['backbone.' + key]), (name, key)
    student = torch.load(
        work / 'checkpoints/moma.pth', weights_only=True)['state_dict']
    assert not [k for k in student if k.startswith('teachers.')]


def test_rerun_reuses_finished_steps(smoke):
    work, _ = smoke
    before = (work / 'results.json').read_text()
    out = _demo(work).stdout
    for step in ('1/4', '2/4', '3/4'):
        assert f'step {step}' in out
    assert out.count(': reusing ') == 3 + len(ROWS)
    rows = json.loads(before)['rows']
    again = json.loads((work / 'results.json').read_text())['rows']
    assert [r['knn_top1'] for r in rows] == [r['knn_top1'] for r in again]
