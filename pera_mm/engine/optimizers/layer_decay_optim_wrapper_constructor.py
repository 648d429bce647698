# Copyright (c) pera-mm contributors. All rights reserved.
"""Layer-wise learning-rate decay that asks the backbone for each parameter's depth.

The constructor works whatever the root model is (an MMSeg ``EncoderDecoder``, an
MMDet detector, an MMPretrain ``ImageClassifier``, or a bare backbone): it looks for
``model.backbone`` and calls its ``get_layer_depth(name, prefix='backbone.')``.
"""

import inspect
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET_CONSTRUCTORS
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as PRETRAIN_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG_CONSTRUCTORS

from ...utils.errors import PeraConfigError

#: last name components whose parameters never get weight decay by default
DEFAULT_NO_DECAY_NAMES = ('pos_embed', 'cls_token')
_PARAMWISE_KEYS = ('layer_decay_rate', 'no_decay_names')


class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper constructor with layer-wise lr decay on the backbone.

    Learning rate. The backbone reports ``(depth, num_depths)`` for each of its
    parameters through ``get_layer_depth``; a parameter of depth ``d`` gets
    ``lr * layer_decay_rate ** (num_depths - 1 - d)``. For ``PerAViT`` /
    ``PerAViTAdapter`` ``num_depths = num_layers + 2`` and the depths are: patch
    embedding, position embedding, cls token 0; block ``i`` ``i + 1``; everything
    else (final norm, adapter-only modules) ``num_layers + 1``, i.e. the full lr.
    Parameters outside the backbone (decode/auxiliary heads, necks, classifier
    heads) get the full lr. Frozen parameters (``requires_grad=False``, e.g. from
    ``frozen_stages``) are left out of the optimizer.

    Weight decay. ``weight_decay`` of the optimizer applies except to: every 1-D
    parameter (norm weights and biases, LayerScale ``gamma``), every parameter
    named ``*.bias``, and every parameter whose last name component is in
    ``no_decay_names`` (default ``('pos_embed', 'cls_token')``); these get 0.

    Each parameter group carries ``lr_scale``, ``layer_depth`` and ``param_names``
    for inspection.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.65))

    Args:
        optim_wrapper_cfg (dict): the ``optim_wrapper`` config (``optimizer`` inside).
        paramwise_cfg (dict, optional): ``layer_decay_rate`` (float in (0, 1],
            default 1.0 = no decay) and ``no_decay_names`` (sequence of str,
            replaces the default list). Other keys are rejected.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(_PARAMWISE_KEYS))
        if unknown:
            raise PeraConfigError(
                f'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg key(s) {unknown}; '
                f'expected {list(_PARAMWISE_KEYS)}'
            )
        rate = paramwise_cfg.get('layer_decay_rate', 1.0)
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise PeraConfigError(
                f'LayerDecayOptimWrapperConstructor: paramwise_cfg.layer_decay_rate must be a '
                f'number in (0, 1], got {rate!r}'
            )
        names = paramwise_cfg.get('no_decay_names', DEFAULT_NO_DECAY_NAMES)
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise PeraConfigError(
                f'LayerDecayOptimWrapperConstructor: paramwise_cfg.no_decay_names must be a '
                f'list of parameter names, got {names!r}'
            )
        # the base class validates nothing we use; keep its attributes
        super().__init__(optim_wrapper_cfg, None)
        self.paramwise_cfg = paramwise_cfg
        self.layer_decay_rate = float(rate)
        self.no_decay_names = tuple(names)

    # ------------------------------------------------------------------ rules
    def _find_backbone(self, model: nn.Module) -> Tuple[nn.Module, str]:
        backbone = getattr(model, 'backbone', None)
        if backbone is None and hasattr(model, 'get_layer_depth'):
            return model, ''  # a bare backbone
        if backbone is None:
            raise PeraConfigError(
                f'LayerDecayOptimWrapperConstructor: {type(model).__name__} has no '
                f'`backbone` attribute and no get_layer_depth method'
            )
        if not hasattr(backbone, 'get_layer_depth'):
            raise PeraConfigError(
                f'LayerDecayOptimWrapperConstructor: backbone {type(backbone).__name__} has no '
                f'get_layer_depth(param_name, prefix) method (PerAViT and PerAViTAdapter do)'
            )
        return backbone, 'backbone.'

    def is_decay_exempt(self, name: str, param: nn.Parameter) -> bool:
        """Whether ``name`` gets no weight decay (1-D, ``*.bias`` or a listed name).

        Args:
            name (str): parameter name in the root model.
            param (Parameter): the parameter.
        """
        return (
            param.ndim <= 1
            or name.endswith('.bias')
            or name.rsplit('.', 1)[-1] in self.no_decay_names
        )

    def param_groups(self, model: nn.Module) -> List[Dict]:
        """The parameter groups of ``model`` (one per depth and decay class).

        Args:
            model (nn.Module): the root model (wrappers with ``.module`` unwrapped).
        """
        if hasattr(model, 'module'):
            model = model.module
        backbone, prefix = self._find_backbone(model)
        base_lr = self.base_lr if self.base_lr is not None else self.optimizer_cfg.get('lr')
        if base_lr is None:
            raise PeraConfigError('LayerDecayOptimWrapperConstructor: optimizer.lr is not set')
        base_wd = self.base_wd or 0.0
        groups: Dict[Tuple[int, bool], Dict] = {}
        num_depths, frozen = None, 0
        for name, param in model.named_parameters():
            if not param.requires_grad:
                frozen += 1
                continue
            if name.startswith(prefix):
                depth, num_depths = backbone.get_layer_depth(name, prefix=prefix)
                scale = self.layer_decay_rate ** (num_depths - 1 - depth)
            else:  # heads, necks: full lr
                depth, scale = None, 1.0
            exempt = self.is_decay_exempt(name, param)
            key = (depth if depth is not None else -1, exempt)
            if key not in groups:
                groups[key] = dict(
                    params=[],
                    param_names=[],
                    lr=base_lr * scale,
                    lr_scale=scale,
                    weight_decay=0.0 if exempt else base_wd,
                    layer_depth=depth,
                )
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        MMLogger.get_current_instance().info(
            f'layer-wise lr decay: rate {self.layer_decay_rate}, {num_depths} backbone depths, '
            f'{len(groups)} parameter groups, {frozen} frozen parameter(s) left out'
        )
        return [groups[k] for k in sorted(groups, key=lambda k: (k[0] < 0, k[0], k[1]))]

    def __call__(self, model: nn.Module) -> OptimWrapper:
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cls = optimizer_cfg['type']
        if isinstance(optimizer_cls, str):
            with OPTIMIZERS.switch_scope_and_registry(None) as registry:
                optimizer_cls = registry.get(optimizer_cfg['type'])
        first_arg = next(iter(inspect.signature(optimizer_cls).parameters))
        optimizer_cfg[first_arg] = self.param_groups(model)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))


for _registry in (
    OPTIM_WRAPPER_CONSTRUCTORS,
    PRETRAIN_CONSTRUCTORS,
    SEG_CONSTRUCTORS,
    DET_CONSTRUCTORS,
):
    _registry.register_module(module=LayerDecayOptimWrapperConstructor)
