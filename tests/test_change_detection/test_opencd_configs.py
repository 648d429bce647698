"""configs/opencd/: every type they name resolves, without Open-CD installed.

Our types (``mmseg.`` / ``mmpretrain.`` prefixes) are looked up in our registries and their
arguments checked against the constructors; Open-CD's types and their arguments are checked
against ``tests/data/opencd_manifest.json`` (constructor signatures transcribed from
likyoo/open-cd); anything else must be an MMEngine root-registry type. A test that builds the
models with Open-CD itself skips when Open-CD is absent.
"""

import importlib
import inspect
import json
from pathlib import Path

import mmcv
import mmengine
import mmseg
import pytest
from mmengine.config import Config
from mmengine.utils import digit_version

import pera_mm  # noqa: F401  (registers our modules)
from pera_mm.testing import REPO_ROOT

CONFIG_DIR = REPO_ROOT / 'configs' / 'opencd'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
MANIFEST = json.loads((REPO_ROOT / 'tests' / 'data' / 'opencd_manifest.json').read_text())
REGISTRY_NAMES = (
    'MODELS',
    'DATASETS',
    'TRANSFORMS',
    'METRICS',
    'HOOKS',
    'VISUALIZERS',
    'VISBACKENDS',
    'LOOPS',
    'OPTIMIZERS',
    'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS',
    'DATA_SAMPLERS',
    'WEIGHT_INITIALIZERS',
    'LOG_PROCESSORS',
)


def _typed_dicts(node, path='cfg'):
    """Every (path, dict) in the config tree that has a 'type'."""
    if isinstance(node, dict):
        if 'type' in node and isinstance(node['type'], str):
            yield path, node
        for key, value in node.items():
            yield from _typed_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_dicts(value, f'{path}[{i}]')


def _lookup(module_name, name):
    registry_module = importlib.import_module(module_name)
    for reg_name in REGISTRY_NAMES:
        registry = getattr(registry_module, reg_name, None)
        if registry is None:
            continue
        registry.import_from_location()  # the lazily registered modules (e.g. mmseg.engine)
        if name in registry.module_dict:
            return registry.module_dict[name]
    return None


def _named_params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    names = {
        n for n, p in sig.parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names - {'self'}, has_kwargs


#: keys consumed by the builders, not passed to the constructors
BUILDER_KEYS = ('type', '_scope_', 'convert_to_iter_based')


def _args(cfg_dict):
    return {k for k in cfg_dict if k not in BUILDER_KEYS}


def _check_ours(scope, name, args):
    cls = _lookup(f'{scope}.registry', name)
    assert cls is not None, f'{scope}.{name} is not in the {scope} registries'
    params, has_kwargs = _named_params(cls)
    if not has_kwargs:
        unknown = args - params
        assert not unknown, f'{scope}.{name} has no argument(s) {sorted(unknown)}'


def _check_opencd(name, cfg_dict):
    entry = MANIFEST['types'][name]
    args = _args(cfg_dict)
    missing = set(entry['required']) - args
    assert not missing, f'opencd {name} needs {sorted(missing)}'
    allowed = set(entry['params'])
    if entry['kwargs_to']:
        module_name, cls_name = entry['kwargs_to'].rsplit('.', 1)
        base_params, _ = _named_params(getattr(importlib.import_module(module_name), cls_name))
        allowed |= base_params
    unknown = args - allowed
    assert not unknown, f'opencd {name} has no argument(s) {sorted(unknown)}'
    for param, choices in entry.get('choices', {}).items():
        if param in cfg_dict:
            assert cfg_dict[param] in choices, f'opencd {name}: {param}={cfg_dict[param]!r}'


def resolve_config(path: Path):
    """Check every type of one config; return the Open-CD types it names."""
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    assert cfg.default_scope == 'opencd'
    assert cfg.custom_imports['imports'] == ['opencd', 'pera_mm']
    opencd_types = set()
    for where, node in _typed_dicts(cfg.to_dict()):
        type_name = node['type']
        scope, _, name = type_name.rpartition('.')
        if scope in ('mmseg', 'mmpretrain', 'mmdet'):
            _check_ours(scope, name, _args(node))
        elif scope in ('', 'opencd') and name in MANIFEST['types']:
            _check_opencd(name, node)
            opencd_types.add(name)
        else:
            assert scope == '', f'{where}: unexpected scope in {type_name!r}'
            assert _lookup('mmengine.registry', name) is not None, (
                f'{where}: {type_name!r} is neither an Open-CD type of the manifest nor an '
                'MMEngine root-registry type (MMSeg / pera-mm types need the mmseg. prefix)'
            )
    return cfg, opencd_types


def test_manifest_lists_the_constructors_and_commits():
    for name, entry in MANIFEST['types'].items():
        assert len(entry['commit']) == 40 and entry['file'].startswith('opencd/'), name
        assert set(entry['required']) <= set(entry['params']), name
    assert MANIFEST['types']['FeatureFusionNeck']['choices']['policy'] == [
        'concat',
        'sum',
        'diff',
        'abs_diff',
    ]


def test_installed_stack_passes_opencd_version_check():
    versions = dict(mmcv=mmcv.__version__, mmengine=mmengine.__version__, mmseg=mmseg.__version__)
    import mmdet

    versions['mmdet'] = mmdet.__version__
    for lib, (low, high) in (
        (k, MANIFEST['version_check'][k]) for k in ('mmcv', 'mmengine', 'mmseg', 'mmdet')
    ):
        v = digit_version(versions[lib])
        assert digit_version(low[2:]) <= v < digit_version(high[1:]), (lib, versions[lib])


@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_type_resolves(path):
    cfg, opencd_types = resolve_config(path)
    assert 'SiamEncoderDecoder' in opencd_types
    assert cfg.model.backbone.type == 'mmseg.PerAViTAdapter'


def test_configs_use_the_heads_they_claim():
    assert len(CONFIGS) == 3
    heads = {p.name: resolve_config(p)[0].model.decode_head.type for p in CONFIGS}
    assert heads['bit_pera-vit-adapter-base-p16_opencd-siam_1xb8-500e_levir-cd-512x512.py'] == (
        'mmseg.BITHead'
    )
    opencd_head = 'opencd-bit_pera-vit-adapter-base-p16_opencd-siam_1xb8-500e_levir-cd-512x512.py'
    assert heads[opencd_head] == 'BITHead'  # Open-CD's, in its scope
    assert 'NOT the reference' in (CONFIG_DIR / opencd_head).read_text()


def test_a_wrong_argument_is_caught():
    bad = dict(type='FeatureFusionNeck', policy='concat', out_index=(0,))
    with pytest.raises(AssertionError, match='out_index'):
        _check_opencd('FeatureFusionNeck', bad)
    with pytest.raises(AssertionError, match='policy'):
        _check_opencd('FeatureFusionNeck', dict(type='FeatureFusionNeck', policy='max'))
    with pytest.raises(AssertionError, match='no argument'):
        _check_ours('mmseg', 'ChangeFeatureProjection', {'in_channels', 'stride'})


def test_builds_with_opencd():
    pytest.importorskip('opencd', reason='Open-CD is not installed (not on PyPI; see README)')
    from mmengine.registry import init_default_scope
    from opencd.registry import MODELS

    init_default_scope('opencd')
    for path in CONFIGS:
        cfg = Config.fromfile(str(path))
        cfg.model.backbone.init_cfg = None
        assert MODELS.build(cfg.model) is not None
