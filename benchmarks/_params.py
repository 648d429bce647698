# Copyright (c) pera-mm contributors. All rights reserved.
"""Parameter counts of a config's model (built on the meta device) and its FSDP units."""

import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401  (registers the modules)


def build_meta(cfg):
    DefaultScope.get_instance('memory-model', scope_name='mmpretrain')
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def numel(module):
    return sum(p.numel() for p in module.parameters())


def fsdp_units(model, policy):
    """Parameter counts of the FSDP units an auto-wrap policy makes (post-order;
    the root unit, last, holds what no other unit took). ``policy`` is
    ('size', min_num_params) for ``size_based_auto_wrap_policy`` (ModuleList /
    ModuleDict are never wrapped) or ('class', names) for a module-class policy
    such as ``pera_fsdp_wrap_policy``."""
    nn = torch.nn
    kind, arg = policy
    units = []

    def visit(mod, is_root=False):
        if kind == 'size' and not is_root and sum(p.numel() for p in mod.parameters()) < arg:
            return sum(p.numel() for p in mod.parameters())  # stays in an ancestor's unit
        rem = sum(p.numel() for p in mod.parameters(recurse=False))
        for child in mod.children():
            rem += visit(child)
        if kind == 'size':
            wrap = rem >= arg and not isinstance(mod, (nn.ModuleList, nn.ModuleDict))
        else:
            wrap = type(mod).__name__ in arg
        if is_root or wrap:
            units.append(rem)
            return 0
        return rem

    visit(model, is_root=True)
    return units, units[-1]


def wrap_policy(cfg, min_num_params=None):
    """The config's FSDP wrap policy as understood by ``fsdp_units``."""
    pol = cfg.get('strategy', {}).get('model_wrapper', {}).get('auto_wrap_policy')
    if (
        min_num_params is None
        and isinstance(pol, dict)
        and pol.get('type') == 'pera_fsdp_wrap_policy'
    ):
        from pera_mm.engine.fsdp_wrap_policy import PERA_FSDP_UNITS

        return ('class', tuple(pol.get('module_names', PERA_FSDP_UNITS)))
    if min_num_params is None:
        min_num_params = pol.get('min_num_params', 1e7) if isinstance(pol, dict) else 1e7
    return ('size', float(min_num_params))
