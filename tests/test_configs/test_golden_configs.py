# Copyright (c) pera-mm contributors. All rights reserved.
"""Every shipped pretraining config means what it meant at commit 90204a9.

``tests/data/golden_configs_90204a9.json`` holds ``Config.fromfile(c).to_dict()``
of each config as it was before the configs were restructured (derived head
dimensions, hook settings in dict fields, the baseline as its own class). Both
sides are reduced to the settings the modules actually receive: hook
arguments resolved from their config fields and class defaults, derived widths
filled in, helper variables dropped, and the old flag combination of the
baseline mapped to ``DINOv2Baseline``. What is left must be equal, except for
the differences listed in ``INTENDED``.
"""

import copy
import json
import re

import pytest
from mmengine.config import Config

from pera_mm.engine.hooks import CollapseMonitorHook, TeacherEMAHook, TeacherTemperatureHook
from pera_mm.models.backbones.pera_vit import PerAViT
from pera_mm.testing import REPO_ROOT

SNAPSHOT = json.loads((REPO_ROOT / 'tests/data/golden_configs_90204a9.json').read_text())
# snapshot configs removed on purpose since the snapshot; they are no longer checked
RETIRED = {
    # pretrained on the AID_150px evaluation images; the aid-unlabeled config replaces it
    'configs/pera/pera_vit-tiny-p16_1xb32-100e_aid150-96px_cpu-budget.py',
}
GOLDEN = {k: v for k, v in SNAPSHOT.items() if k not in RETIRED}
FIELD_HOOKS = {h.__name__: h for h in (TeacherEMAHook, TeacherTemperatureHook, CollapseMonitorHook)}
HELPER_VARIABLES = ('view_cfg', 'mask_cfg', 'patch_size')

# (config, dotted path inside the effective config) -> (old value, new value)
INTENDED = {
    # the demo's temperature warm-up now fits its 20-epoch run
    (
        'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py',
        'hooks.TeacherTemperatureHook.warmup_epochs',
    ): (30, 10),
}

# intended differences of every snapshot config
INTENDED_EVERYWHERE = {
    # AdamW's fused kernel (issue 23; same values, one kernel instead of a per-parameter loop)
    'optim_wrapper.optimizer.fused': ('<absent>', True),
}


def _plain(obj):
    return json.loads(json.dumps(obj, default=str))


def _resolve_hooks(cfg):
    hooks = {}
    for hook in cfg.pop('custom_hooks'):
        hook = dict(hook)
        kind = hook.pop('type')
        cls = FIELD_HOOKS.get(kind)
        if cls is not None:
            hook = {**cls.defaults, **cfg.get(cls.cfg_field, {}), **hook}
            if hook.get('warmup_iters') is not None:
                hook['warmup_epochs'] = None
        hooks[kind] = hook
    for cls in FIELD_HOOKS.values():
        cfg.pop(cls.cfg_field, None)
    cfg['hooks'] = hooks


def _resolve_model(model):
    backbone = model['backbone']
    backbone.setdefault('patch_size', 16)
    arch = backbone['arch']
    width = (PerAViT.arch_zoo[arch] if isinstance(arch, str) else arch)['embed_dims']
    model['projector'].setdefault('in_channels', width)
    prototypes = model['projector'].get('out_channels', 65536)
    if model.get('predictor'):
        model['predictor'].setdefault('in_channels', width)
        model['predictor'].setdefault('patch_size', backbone['patch_size'])
        model['predictor'].setdefault('img_channels', backbone.get('in_channels', 3))
    for key in ('cls_loss', 'patch_loss'):
        if model.get(key):
            model[key].setdefault('out_channels', prototypes)
    if model['type'] == 'PerA' and model.get('patch_loss'):
        # the old flag combination that selected the baseline inside PerA
        assert model.pop('koleo_on') == 'backbone'
        assert model.pop('teacher_local_crops') is False
        assert model['cls_loss'].pop('pairing') == 'cross'
        assert model.pop('predictor') is None and model.pop('pixel_loss') is None
        model.pop('pixel_target')
        model['type'] = 'DINOv2Baseline'
    elif model['type'] == 'PerA':
        assert model.pop('koleo_on', 'head') == 'head'
        assert model.pop('teacher_local_crops', True) is True
        assert model['cls_loss'].pop('pairing', 'same') == 'same'


def effective(cfg):
    """The settings the runner and the modules receive, in one canonical form."""
    cfg = copy.deepcopy(_plain(cfg))
    for key in HELPER_VARIABLES:
        cfg.pop(key, None)
    _resolve_hooks(cfg)
    _resolve_model(cfg['model'])
    return cfg


def _flat(obj, prefix=''):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f'{prefix}.{k}' if prefix else k))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f'{prefix}[{i}]'))
        return out
    return {prefix: obj}


@pytest.mark.parametrize('config', sorted(GOLDEN))
def test_config_keeps_its_meaning(config):
    old = _flat(effective(GOLDEN[config]))
    new = _flat(effective(Config.fromfile(REPO_ROOT / config).to_dict()))
    missing = object()
    diffs = {
        k: (old.get(k, missing), new.get(k, missing))
        for k in sorted(set(old) | set(new))
        if old.get(k, missing) != new.get(k, missing)
    }
    expected = dict(INTENDED_EVERYWHERE)
    expected.update({k[1]: v for k, v in INTENDED.items() if k[0] == config})
    assert {
        k: tuple('<absent>' if x is missing else x for x in v) for k, v in diffs.items()
    } == expected


def test_every_snapshot_config_still_ships():
    # pretraining configs added after the snapshot are built by test_pera_algorithm
    shipped = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / 'configs/pera').rglob('*.py')}
    assert set(GOLDEN) <= shipped


def _pretraining_files():
    """The pretraining configs and every ``_base_`` file they inherit."""
    todo = [*(REPO_ROOT / 'configs/pera').rglob('*.py')]
    seen = set()
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        for base in re.findall(r"['\"]([^'\"]+\.py)['\"]", path.read_text()):
            if (path.parent / base).is_file():
                todo.append(path.parent / base)
    return sorted(seen)


def test_patch_size_is_stated_once_per_config():
    for config in GOLDEN:
        cfg = Config.fromfile(REPO_ROOT / config)
        pipeline = cfg.train_dataloader.dataset.pipeline
        masks = [t for t in pipeline if t['type'] == 'DisjointMaskGenerator']
        assert masks[0]['patch_size'] == cfg.model.backbone.patch_size == cfg.patch_size
        assert 'patch_size' not in (cfg.model.get('predictor') or {})
    # the number itself appears in one file of the pretraining config tree
    stating = [p for p in _pretraining_files() if re.search(r'patch_size\s*=\s*\d', p.read_text())]
    assert [p.name for p in stating] == ['pera_rsrsd-448px.py']
