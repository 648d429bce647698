# Copyright (c) pera-mm contributors. All rights reserved.
"""MMPretrain's ``LoRAModel`` on a PerA ViT backbone, with self-contained checkpoints."""

import contextlib
import copy
from typing import List, Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.models.peft import LoRAModel
from mmpretrain.models.peft.lora import LoRALinear
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

from ...utils.errors import PeraConfigError

#: parameter-name prefixes of the ViT proper (PerAViT's names; PerAViTAdapter keeps them)
VIT_PARAM_PREFIXES = (
    'patch_embed.',
    'pos_embed',
    'cls_token',
    'register_tokens',
    'blocks.',
    'norm.',
)
#: LoRA state-dict suffix that stores ``alpha / rank`` of a layer (read by the merge)
SCALING_KEY = 'lora_scaling'


def is_vit_param(name: str) -> bool:
    """Whether ``name`` (relative to the backbone) is a parameter of the ViT proper."""
    return name.startswith(VIT_PARAM_PREFIXES)


class ViTLoRAModel(LoRAModel):
    r"""LoRA on the linears of a ``PerAViT`` or of the ViT inside ``PerAViTAdapter``.

    The LoRA layers, the target matching and the freezing rule are MMPretrain's
    :class:`~mmpretrain.models.peft.LoRAModel` (``LoRALinear``: ``y = W x + (alpha / r)
    B A x``, ``B`` zero-initialised). Three things differ, each for the stock tools:

    - the ViT inside ``PerAViTAdapter`` has no sub-module of its own (the adapter
      holds ``patch_embed``, ``pos_embed`` and ``blocks`` directly), so the adapter is
      wrapped and only the ViT's non-LoRA parameters (:data:`VIT_PARAM_PREFIXES`)
      are frozen; the spatial prior, interactions and output norms train. On a
      ``PerAViT`` every non-LoRA parameter is frozen, as in ``LoRAModel``;
    - the state dict keeps the frozen base weights (``LoRAModel`` drops them): a
      checkpoint is complete, so ``tools/test.py`` and
      ``tools/model_converters/merge_lora.py`` need that file only and ``--resume``
      restores the base from it. Every LoRA layer also stores its ``alpha / rank`` as
      a ``lora_scaling`` buffer for the merge;
    - the ``Pretrained`` init_cfg of ``module`` is applied in :meth:`init_weights`
      (training start, as for any backbone) to the un-adapted linears, not while the
      model is built, so building for testing reads no init checkpoint.

    Targets must be ``nn.Linear`` layers of the ViT blocks (e.g. ``blocks\.\d+\.attn
    \.qkv``); one that matches nothing, or a layer outside the blocks, is an error.

    Args:
        module (dict): the ``PerAViT`` or ``PerAViTAdapter`` config.
        alpha (float): LoRA scale numerator (scaling ``alpha / rank``).
        rank (int): LoRA rank.
        drop_rate (float): dropout on the LoRA branch input.
        targets (list[dict]): ``dict(type=REGEX_OR_SUFFIX[, rank, alpha, drop_rate])``,
            matched against the module's sub-module names as in ``LoRAModel``.
    """

    def __init__(
        self,
        module: dict,
        alpha: float = 1,
        rank: int = 0,
        drop_rate: float = 0.0,
        targets: Optional[List[dict]] = None,
    ):
        if not isinstance(module, dict) or 'type' not in module:
            raise PeraConfigError(
                f'ViTLoRAModel: module must be a model config dict, got {module!r}'
            )
        targets = list(targets or [])
        if not targets:
            raise PeraConfigError('ViTLoRAModel: targets is empty; name the linears to adapt')
        for target in targets:
            r = target.get('rank', rank) if isinstance(target, dict) else None
            if not isinstance(target, dict) or 'type' not in target:
                raise PeraConfigError(
                    f'ViTLoRAModel: each target must be dict(type=REGEX), got {target!r}'
                )
            if not isinstance(r, int) or isinstance(r, bool) or r < 1:
                raise PeraConfigError(
                    f'ViTLoRAModel: rank of target {target["type"]!r} must be an int >= 1, '
                    f'got {r!r}'
                )
        module = copy.deepcopy(dict(module))
        self._module_init_cfg = module.pop('init_cfg', None)
        try:
            super().__init__(module, alpha=alpha, rank=rank, drop_rate=drop_rate, targets=targets)
        except ValueError as e:
            if 'No lora layer' not in str(e):
                raise
            raise PeraConfigError(
                f'ViTLoRAModel: no nn.Linear of {module["type"]} matches targets '
                f'{[t["type"] for t in targets]}'
            ) from None
        self._check_adapted_layers()
        self._add_scaling_buffers()

    # --------------------------------------------------------------- LoRAModel parts
    def _set_lora_trainable(self):
        """Freeze the ViT's non-LoRA parameters; LoRA (and adapter modules) train."""
        for name, param in self.module.named_parameters():
            param.requires_grad = '.lora_' in name or not is_vit_param(name)

    def _register_state_dict_hooks(self):
        """Keep LoRAModel's hooks off: checkpoints hold the base weights too."""

    # ------------------------------------------------------------------ helpers
    def lora_layers(self):
        """``(name, LoRALinear)`` of every adapted layer, names relative to ``module``."""
        return [(n, m) for n, m in self.module.named_modules() if isinstance(m, LoRALinear)]

    def _check_adapted_layers(self):
        for name, layer in self.lora_layers():
            if not name.startswith('blocks.'):
                raise PeraConfigError(
                    f'ViTLoRAModel: target matched {name!r}, outside the ViT blocks; '
                    r"use block-anchored targets such as 'blocks\.\d+\.attn\.qkv'"
                )

    def _add_scaling_buffers(self):
        for _, layer in self.lora_layers():
            layer.register_buffer(SCALING_KEY, torch.tensor(float(layer.scaling)))

    @contextlib.contextmanager
    def _base_linears(self):
        """The original ``nn.Linear`` layers in place of the LoRA ones, for a while."""
        layers = self.lora_layers()
        for name, layer in layers:
            self._set_submodule(name, layer.original_layer)
        try:
            yield
        finally:
            for name, layer in layers:
                self._set_submodule(name, layer)

    def _set_submodule(self, name: str, new: nn.Module):
        parent, _, child = name.rpartition('.')
        setattr(self.module.get_submodule(parent), child, new)

    def init_weights(self):
        """The module's own initialisation of the base weights, then its init_cfg if any.

        Runs with the original linears in place, so the LoRA parameters keep their
        initialisation (zero up-projection).
        """
        self.module.init_cfg = self._module_init_cfg
        try:
            with self._base_linears():
                self.module.init_weights()
        finally:
            self.module.init_cfg = None
        self._is_init = True

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """The wrapped backbone's layer depth of ``param_name`` (``module.`` skipped)."""
        return self.module.get_layer_depth(param_name, prefix=prefix + 'module.')

    def parameter_counts(self) -> dict:
        """Numbers of LoRA, trainable and total parameters of the backbone."""
        params = dict(self.named_parameters())
        return dict(
            lora=sum(p.numel() for n, p in params.items() if '.lora_' in n),
            trainable=sum(p.numel() for p in params.values() if p.requires_grad),
            total=sum(p.numel() for p in params.values()),
            layers=len(self.lora_layers()),
        )


for _registry in (MODELS, SEG_MODELS, DET_MODELS):
    _registry.register_module(module=ViTLoRAModel)
