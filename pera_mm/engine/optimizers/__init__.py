from .auto_amp_optim_wrapper import AutoAmpOptimWrapper, amp_device_available
from .layer_decay_optim_wrapper_constructor import LayerDecayOptimWrapperConstructor
from .sharded_clip_grad import sharded_clip_grad_norm_

__all__ = [
    'AutoAmpOptimWrapper',
    'LayerDecayOptimWrapperConstructor',
    'amp_device_available',
    'sharded_clip_grad_norm_',
]
