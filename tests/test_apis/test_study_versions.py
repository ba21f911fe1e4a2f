"""The README's claims of every protocol version are the generated ones."""
import copy
import json
import os.path as osp

from mmmoma.apis.common import REPO_ROOT
from mmmoma.apis.study.versions import (BEGIN, END, is_published_folder,
                                        published, side_by_side,
                                        update_readme)


def _v1() -> dict:
    with open(osp.join(REPO_ROOT, 'docs', 'study', 'results.json')) as f:
        return json.load(f)


def _v2(v1: dict) -> dict:
    """v1's results as a later version: other budgets, claim 2 held, and
    two claims of its own."""
    v2 = copy.deepcopy(v1)
    v2['settings'].update(student_epochs=10,
                          teacher_epochs=dict(mae=40, mocov3=40))
    claim2 = v2['claims'][1]
    for check in claim2['checks']:
        check.update(diff=0.5, held=True)
    claim2['verdict'] = 'held'
    v2['claims'].append(dict(
        number='5', claim='The student transfers to segmentation',
        rule='gt, ge', verdict='mixed', checks=[
            dict(metric='miou_finetune', rule='gt', diff=-1.25, spread=0.5,
                 held=False),
            dict(metric='miou_finetune', rule='ge', diff=0.75, spread=0.5,
                 held=True)]))
    return v2


def test_the_readme_block_is_the_published_results():
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        text = f.read()
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    assert block.strip().splitlines() == side_by_side(published())
    assert [name for name, _ in published()][0] == 'v1'


def test_side_by_side_has_a_column_per_version():
    v1 = _v1()
    lines = side_by_side([('v1', v1), ('v2', _v2(v1))])
    assert lines[0] == (
        '| claim | v1 (students 2 epochs, teachers 8 (MAE) / 8 (MoCo v3)) | '
        'v2 (students 10 epochs, teachers 40 (MAE) / 40 (MoCo v3)) |')
    assert lines[1] == '|---|---|---|'
    assert len(lines) == 2 + 5
    # v1's checks carry no rule of their own: the claim's ('ge', s)
    assert lines[3].startswith(
        "| 2. The student reaches its teachers' quality with far fewer "
        'epochs | **did not hold**: k-NN -7.82 (>= -1.34); linear -2.66 '
        '(>= -0.75) | **held**: k-NN +0.50 (>= -1.34);')
    assert lines[-1] == (
        '| 5. The student transfers to segmentation | - | **mixed**: mIoU '
        '-1.25 (> 0.50); mIoU +0.75 (>= -0.50) |')
    # a claim's variant sits under the claim, whatever order it came in
    v2 = _v2(v1)
    v2['claims'] += [dict(v2['claims'][1], number='2 (FLOPs)'),
                     dict(v2['claims'][1], number='plateau')]
    numbers = [line.split('.')[0][2:]
               for line in side_by_side([('v2', v2)])[2:]]
    assert numbers == ['1', '2', '2 (FLOPs)', '3', '4', '5', 'plateau']
    # a segmentation protocol under its bar says so beside its verdict
    v2 = _v2(v1)
    v2['claims'][-1]['bar'] = dict(row='teacher-mocov3', value=12.0,
                                   needed=30.0, met=False)
    assert side_by_side([('v2', v2)])[-1].startswith(
        "| 5. The student transfers to segmentation | **mixed** (the "
        "protocol's bar not met): mIoU -1.25")


def test_update_readme_rewrites_only_its_block(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text(f'# x\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n')
    studies = [('v1', _v1())]
    assert update_readme(str(readme), studies)
    text = readme.read_text()
    assert text.startswith('# x\n\nbefore\n' + BEGIN + '\n| claim |')
    assert text.endswith(END + '\nafter\n')
    assert '\nold\n' not in text
    assert not update_readme(str(readme), studies)  # already up to date
    readme.write_text('no markers\n')
    assert not update_readme(str(readme), studies)
    assert readme.read_text() == 'no markers\n'
    assert not update_readme(str(tmp_path / 'absent.md'), studies)


def test_only_the_version_folders_rewrite_the_readme(tmp_path):
    assert is_published_folder(osp.join(REPO_ROOT, 'docs', 'study-v2'))
    assert is_published_folder(osp.join(REPO_ROOT, 'docs', 'study', ''))
    assert not is_published_folder(str(tmp_path))
    assert not is_published_folder(osp.join(REPO_ROOT, 'docs'))
