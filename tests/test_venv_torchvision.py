"""The venv that tools/install.sh makes imports torchvision (and timm)
whatever is imported first; the fix is one shared definition."""
import glob
import os
import subprocess
import sys
import sysconfig

import pytest

import mmmoma  # noqa: F401
import _mmmoma_torchvision as tv

HOOK = os.path.join(sysconfig.get_paths()['purelib'], 'mmmoma-torchvision.pth')


def fresh(code: str, *flags: str) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter of this environment, from /."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run([sys.executable, *flags, '-c', code], cwd='/',
                          env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(not os.path.isfile(HOOK),
                    reason='not the venv of tools/install.sh (no start-up '
                    f'hook {HOOK})')
@pytest.mark.parametrize('first', ['torchvision', 'timm'])
def test_install_venv_imports_torchvision_first(first):
    out = fresh(f'import sys, {first}; import torchvision.transforms; '
                "print('mmmoma' in sys.modules)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'False'  # the hook does not import mmmoma


def test_without_the_hook_this_torchvision_needs_the_fix():
    """The control: with site's .pth files off (-S, then the venv's
    site-packages on the path), a torchvision whose compiled ops do not
    load fails to import, and the shared fix makes it import."""
    if tv.compiled_ops_load():
        pytest.skip('this torchvision matches torch: nothing to fix')
    site = sysconfig.get_paths()['purelib']
    editable = glob.glob(os.path.join(site, '__editable__*finder.py'))
    root = os.path.dirname(os.path.abspath(tv.__file__))
    setup = (f'import sys; sys.path.append({site!r}); '
             f'sys.path.append({root!r}); ')
    if editable:
        setup += ('import importlib; m = importlib.import_module('
                  f'{os.path.basename(editable[0])[:-3]!r}); m.install(); ')
    broken = fresh(f'{setup}import torchvision', '-S')
    assert broken.returncode != 0
    assert 'torchvision::nms does not exist' in broken.stderr
    fixed = fresh(f'{setup}import _mmmoma_torchvision as t; '
                  't.define_schemas(); import torchvision.transforms', '-S')
    assert fixed.returncode == 0, fixed.stderr[-2000:]


def test_finder_acts_once_and_removes_itself():
    finder = tv.TorchvisionFinder()
    sys.meta_path.insert(0, finder)
    try:
        assert finder.find_spec('numpy') is None
        assert finder in sys.meta_path  # not torchvision: stays
        assert finder.find_spec('torchvision') is None
        assert finder not in sys.meta_path
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
