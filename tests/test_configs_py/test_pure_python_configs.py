"""The pure-Python configs (mmmoma/configs) hold the legacy configs' settings.

Each ``mmmoma/configs/<dir>/<name>.py`` is the config
``configs/<dir>/<name with - for _>.py`` in MMEngine's pure-Python format.
Both are loaded with ``Config.fromfile`` and every field that the Runner,
the train/test tools or a hook reads is compared. Type names of the legacy
configs are resolved through the registries, in their scope, to the class
they build; the pure-Python configs give classes (or names that resolve in
MMEngine's root registries, since their ``default_scope`` is ``None``).
"""
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from mmengine.config import Config, ConfigDict
from mmengine.config.lazy import LazyAttr, LazyObject
from mmengine.registry import DefaultScope

import mmmoma  # noqa: F401  (before Config.fromfile: enables mmmoma::)

REPO_ROOT = Path(__file__).resolve().parents[2]
LEGACY = REPO_ROOT / 'configs'
PURE = REPO_ROOT / 'mmmoma' / 'configs'

#: The legacy 200e/300e configs restate param_scheduler as a new list, and
#: MMEngine replaces lists instead of merging them: their LinearLR loses
#: start_factor=1e-4 and the per-iteration conversion, their cosine starts
#: at epoch 0 (begin=10 lost) and both step per epoch. The pure-Python forms
#: keep the 100e schedule with the new ends; strict, so that fixing the
#: legacy configs turns these into failures that ask to drop the marks.
#: Top-level keys that the Runner, tools/train.py, tools/test.py or a hook
#: reads. Helper variables of a config (teacher dicts, pipelines, paths)
#: matter only through these.
RUNNER_KEYS = (
    'model', 'data_preprocessor', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'optim_wrapper',
    'param_scheduler', 'val_evaluator', 'test_evaluator', 'auto_scale_lr',
    'default_hooks', 'custom_hooks', 'load_from', 'resume', 'env_cfg',
    'log_processor', 'log_level', 'visualizer', 'randomness',
    'find_unused_parameters', 'tta_model', 'tta_pipeline', 'launcher',
    'work_dir')

#: The registry a ``type`` is built from, by the nearest enclosing key.
REGISTRY_OF_KEY = {
    'pipeline': 'TRANSFORMS',
    'train_pipeline': 'TRANSFORMS',
    'test_pipeline': 'TRANSFORMS',
    'tta_pipeline': 'TRANSFORMS',
    'transforms': 'TRANSFORMS',
    'dataset': 'DATASETS',
    'sampler': 'DATA_SAMPLERS',
    'collate_fn': 'FUNCTIONS',
    'worker_init_fn': 'FUNCTIONS',
    'optimizer': 'OPTIMIZERS',
    'optim_wrapper': 'OPTIM_WRAPPERS',
    'param_scheduler': 'PARAM_SCHEDULERS',
    'default_hooks': 'HOOKS',
    'custom_hooks': 'HOOKS',
    'init_cfg': 'WEIGHT_INITIALIZERS',
    'visualizer': 'VISUALIZERS',
    'vis_backends': 'VISBACKENDS',
    'val_evaluator': 'METRICS',
    'test_evaluator': 'METRICS',
    'constructor': 'OPTIM_WRAPPER_CONSTRUCTORS',
    'augments': 'BATCH_AUGMENTS',  # ImageClassifier's train_cfg (Mixup)
    # train_cfg / val_cfg / test_cfg at the top level (model.test_cfg is not)
    'LOOPS': 'LOOPS',
}
TOP_LEVEL_LOOPS = ('train_cfg', 'val_cfg', 'test_cfg')


@pytest.fixture(scope='module', autouse=True)
def registered():
    """Every MMPretrain and MMSeg module in its registries, for resolving
    the legacy names (the Runner imports them the same way)."""
    import mmseg.visualization  # noqa: F401  (not registered by the call)
    from mmpretrain.utils import register_all_modules as pretrain_all
    from mmseg.utils import register_all_modules as seg_all
    pretrain_all(init_default_scope=False)
    seg_all(init_default_scope=False)


def pure_path(legacy: str) -> Path:
    """``moma/moma_vit-b_moco-mae_100e.py`` -> its pure-Python module."""
    return PURE / legacy.replace('-', '_')


def legacy_configs() -> list:
    return sorted(
        p.relative_to(LEGACY).as_posix() for p in LEGACY.rglob('*.py')
        if '_base_' not in p.parts)


def covered() -> list:
    return [pytest.param(rel, id=rel[:-3]) for rel in legacy_configs()]


def registry(name: str, codebase: Optional[str]):
    """A registry of MMPretrain, MMSeg or (``None``) MMEngine's root;
    ``None`` where neither the codebase nor the root has one of that name
    (BATCH_AUGMENTS is MMPretrain's only)."""
    import mmengine.registry as root
    if codebase == 'mmpretrain':
        import mmpretrain.registry as module
    elif codebase == 'mmseg':
        import mmseg.registry as module
    else:
        module = root
    return getattr(module, name, None) or getattr(root, name, None)


def resolve(name: str, key: str, scope: Optional[str]) -> Any:
    """What a type name builds: tried in the registry of ``key`` first."""
    first = REGISTRY_OF_KEY.get(key, 'MODELS')
    others = sorted(set(REGISTRY_OF_KEY.values()) | {'MODELS'})
    with DefaultScope.overwrite_default_scope(scope):
        for reg_name in [first] + others:
            reg = registry(reg_name, scope)
            found = reg.get(name) if reg is not None else None
            if found is not None:
                return found
    raise AssertionError(f'type {name!r} (under {key!r}, scope {scope!r}) '
                         'is in no registry')


def normalize(node: Any, scope: Optional[str], key: str = '') -> Any:
    """Plain dicts and lists, lazy imports built, type names resolved,
    ``_scope_`` applied and dropped."""
    if isinstance(node, (LazyObject, LazyAttr)):
        node = node.build()
    if isinstance(node, (dict, ConfigDict)):
        scope = node.get('_scope_', scope)
        out = {}
        for k, v in node.items():  # ConfigDict.items builds lazy objects
            if k == '_scope_':
                continue
            where = key if k == 'type' else k
            if k in ('type', 'constructor') and isinstance(v, str):
                v = resolve(v, where, scope)
            else:
                v = normalize(v, scope, where)
            out[k] = v
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(normalize(v, scope, key) for v in node)
    return node


def runner_fields(cfg: Config, scope: Optional[str]) -> dict:
    fields = {}
    for key in RUNNER_KEYS:
        if key in cfg:
            where = ('LOOPS' if key in TOP_LEVEL_LOOPS else key)
            fields[key] = normalize(cfg[key], scope, where)
    return fields


def differences(a: Any, b: Any, path: str = '') -> Iterator[str]:
    """Where two normalized configs differ, as dotted paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                yield f'{path}.{k}: only in {"legacy" if k in a else "pure"}'
            else:
                yield from differences(a[k], b[k], f'{path}.{k}')
    elif (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
          and len(a) == len(b)):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f'{path}[{i}]')
    elif a != b or type(a) is not type(b):
        yield f'{path}: legacy {a!r} vs pure {b!r}'


def test_every_legacy_config_has_a_pure_python_form():
    missing = [
        rel for rel in legacy_configs() if not pure_path(rel).is_file()
    ]
    assert not missing
    assert all(pure_path(rel).stem.isidentifier() for rel in legacy_configs())
    # and nothing in mmmoma/configs that maps to no legacy config
    mapped = {pure_path(rel) for rel in legacy_configs()}
    extra = [
        p for p in PURE.rglob('*.py') if '_base_' not in p.parts
        and p.name != '__init__.py' and p not in mapped
    ]
    assert not extra


@pytest.mark.parametrize('rel', covered())
def test_pure_python_config_matches_the_legacy_one(rel):
    legacy = Config.fromfile(str(LEGACY / rel))
    pure = Config.fromfile(str(pure_path(rel)))
    assert pure.get('default_scope', 'unset') is None
    # the legacy scope names what its strings build; the pure-Python
    # config's strings must build under no scope
    expected = runner_fields(legacy, legacy.default_scope)
    actual = runner_fields(pure, None)
    assert expected['model']['type'] is actual['model']['type']
    diff = list(differences(expected, actual))
    assert not diff, '\n'.join(diff[:20])


def test_normalize_resolves_scoped_names_and_scopes():
    """The comparison itself: names resolve per registry and scope."""
    from mmcv.transforms import RandomFlip as MMCVFlip
    from mmpretrain.models import MAEViT
    from mmseg.datasets.transforms import RandomFlip as SegFlip
    from torch.optim import AdamW
    cfg = dict(
        model=dict(type='mmpretrain.MAEViT'),
        optimizer=dict(type='AdamW'),
        pipeline=[dict(type='RandomFlip')])
    assert normalize(cfg, 'mmseg') == dict(
        model=dict(type=MAEViT),
        optimizer=dict(type=AdamW),
        pipeline=[dict(type=SegFlip)])
    assert normalize(cfg, 'mmpretrain')['pipeline'] == [dict(type=MMCVFlip)]
    scoped = dict(pipeline=[dict(_scope_='mmpretrain', type='RandomFlip')])
    assert normalize(scoped, 'mmseg') == dict(pipeline=[dict(type=MMCVFlip)])
    assert list(differences({'a': [1, 2]}, {'a': [1, 3]})) == [
        '.a[1]: legacy 2 vs pure 3'
    ]
