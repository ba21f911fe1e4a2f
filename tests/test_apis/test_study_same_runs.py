"""Rows that land on the same run (config, seed and epochs) train once: the
second row gets the first's checkpoint, marked, and is counted once in the
study's wall time. Training is replaced by a fake ``tools/train.py``."""
import os.path as osp

import pytest
import torch

from mmmoma.apis import steps, study
from mmmoma.apis.common import Progress
from mmmoma.apis.study.pipeline import _made_seconds
from mmmoma.apis.study.report import _same_runs_note
from mmmoma.apis.study.runs import (checkpoint_of, identical_groups,
                                    train_run)
from mmmoma.fileio import load_checkpoint


@pytest.fixture
def work(tmp_path):
    for kind in ('mae', 'mocov3'):
        path = tmp_path / checkpoint_of(str(tmp_path), f'teacher-{kind}-s0',
                                        kind)
        path.parent.mkdir(parents=True)
        torch.save({'state_dict': {}, 'meta': {}}, path)
    return str(tmp_path)


@pytest.fixture
def trained(monkeypatch):
    """Every tools/train.py run made: its work dir. Each one saves
    different weights, so a copied checkpoint shows."""
    made = []

    def fake_run_tool(cmd, log_path, what, on_line=None):
        run_dir = cmd[cmd.index('--work-dir') + 1]
        last = osp.join(run_dir, 'epoch_1.pth')
        torch.save({'state_dict': {'w': torch.tensor(float(len(made)))}},
                   last)
        with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
            f.write(last)
        made.append(run_dir)

    monkeypatch.setattr(steps, 'run_tool', fake_run_tool)
    return made


def _rows():
    rows = {r['id']: r for r in study.study_rows(study.PRESETS['cpu'])}
    # as match_epochs may set it: mask 0.9 at mask 0.5's FLOPs = 20 epochs
    rows['mask-0.9-flops-0.5'] = dict(rows['mask-0.9-flops-0.5'],
                                      epochs=rows['moco-mae-long']['epochs'])
    return rows


def test_only_identical_runs_are_grouped(work):
    preset = study.PRESETS['cpu']
    rows = _rows()
    long, same = rows['moco-mae-long'], rows['mask-0.9-flops-0.5']
    tasks = [(long, 0), (rows['moco-mae'], 0), (same, 0), (rows['moco-mae'],
                                                          1)]
    groups = identical_groups(tasks, work, preset)
    assert [[(r['id'], s) for r, s in g] for g in groups] == [
        [('moco-mae-long', 0), ('mask-0.9-flops-0.5', 0)],
        [('moco-mae', 0)], [('moco-mae', 1)]]
    # other epochs, another seed or another mask ratio: another run
    for other in (dict(same, epochs=same['epochs'] + 1),
                  dict(same, mask_ratio=0.75)):
        assert len(identical_groups([(long, 0), (other, 0)], work,
                                    preset)) == 2
    assert len(identical_groups([(long, 0), (same, 1)], work, preset)) == 2


def test_the_twin_takes_the_checkpoint_and_keeps_it(work, trained):
    preset = study.PRESETS['cpu']
    rows = _rows()
    long, same = rows['moco-mae-long'], rows['mask-0.9-flops-0.5']
    progress = Progress('test')

    def both(force=False):
        first = train_run(long, 0, work, 'cpu', preset, progress, 'CPU',
                          force=force)
        second = train_run(same, 0, work, 'cpu', preset, progress, 'CPU',
                           force=force, same_as='moco-mae-long-s0')
        return first, second

    first, second = both()
    assert len(trained) == 1  # one training run for two rows
    ckpt = checkpoint_of(work, 'mask-0.9-flops-0.5-s0', 'moma')
    assert second['checkpoint'] == ckpt
    assert second['same_run_as'] == 'moco-mae-long-s0'
    assert 'same_run_as' not in first
    assert torch.equal(load_checkpoint(ckpt)['state_dict']['w'],
                       load_checkpoint(first['checkpoint'])['state_dict']['w'])
    # its own settings (its own config), the twin's training record
    assert second['settings'] != first['settings']
    assert second['train_seconds'] == first['train_seconds']
    assert osp.normpath(osp.join(osp.dirname(ckpt), second['source'])) == \
        osp.normpath(osp.join(osp.dirname(first['checkpoint']),
                              first['source']))
    # run again: both reused, the twin's file untouched (its evaluations
    # are cached by its mtime)
    mtime = osp.getmtime(ckpt)
    both()
    assert len(trained) == 1 and osp.getmtime(ckpt) == mtime
    # --force trains the first again, once, and the twin takes the new one
    first, second = both(force=True)
    assert len(trained) == 2
    assert load_checkpoint(ckpt)['state_dict']['w'].item() == 1.0
    # counted once in the study's wall time, and said so in results.md
    runs = {'moco-mae-long-s0': first, 'mask-0.9-flops-0.5-s0': second}
    assert _made_seconds([], runs, 0.0)['training'] == pytest.approx(
        first['train_seconds'] / first.get('jobs', 1))
    note = _same_runs_note(dict(same_runs={'mask-0.9-flops-0.5-s0':
                                           'moco-mae-long-s0'}))
    assert '`mask-0.9-flops-0.5-s0` is `moco-mae-long-s0`' in note[0]
    assert _same_runs_note({}) == []


def test_a_twin_trained_on_its_own_is_kept(work, trained):
    """A work dir from before this check holds both rows trained: the
    second keeps its own checkpoint (no adoption, no re-evaluation)."""
    preset = study.PRESETS['cpu']
    rows = _rows()
    progress = Progress('test')
    train_run(rows['mask-0.9-flops-0.5'], 0, work, 'cpu', preset, progress,
              'CPU')
    ckpt = checkpoint_of(work, 'mask-0.9-flops-0.5-s0', 'moma')
    mtime = osp.getmtime(ckpt)
    train_run(rows['moco-mae-long'], 0, work, 'cpu', preset, progress, 'CPU')
    again = train_run(rows['mask-0.9-flops-0.5'], 0, work, 'cpu', preset,
                      progress, 'CPU', same_as='moco-mae-long-s0')
    assert len(trained) == 2 and osp.getmtime(ckpt) == mtime
    assert 'same_run_as' not in again
