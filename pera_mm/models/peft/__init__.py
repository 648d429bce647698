# Copyright (c) pera-mm contributors. All rights reserved.
from .lora_merge import lora_layer_prefixes, merge_lora_state_dict
from .vit_lora_model import VIT_PARAM_PREFIXES, ViTLoRAModel, is_vit_param

__all__ = [
    'ViTLoRAModel',
    'VIT_PARAM_PREFIXES',
    'is_vit_param',
    'lora_layer_prefixes',
    'merge_lora_state_dict',
]
