"""An optimizer wrapper that uses AMP where it can and fp32 where it cannot.

MMEngine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device, so an AMP
config cannot run on a CPU-only machine (tests, CI, debugging). With
``type='AutoAmpOptimWrapper'`` the same config runs everywhere: on an
accelerator it IS ``AmpOptimWrapper`` (autocast ``dtype``, GradScaler
``loss_scale``); without one it behaves exactly like ``OptimWrapper``.
"""
from contextlib import AbstractContextManager
from typing import Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from ...utils.device import amp_device_available
from .sharded_clip_grad import sharded_clip_grad_norm_

_logged_choices = set()


def _check_amp_args(loss_scale, dtype) -> None:
    """Validate the AMP arguments on every device, so a config that is wrong
    for GPUs is also rejected on CPU (with a one-line message)."""
    if isinstance(dtype, str):
        if dtype not in AmpOptimWrapper.valid_dtypes:
            raise ValueError(
                f'AutoAmpOptimWrapper: dtype must be one of '
                f'{AmpOptimWrapper.valid_dtypes} or a torch.dtype, got '
                f'{dtype!r}')
    elif dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError('AutoAmpOptimWrapper: dtype must be a str, a '
                        f'torch.dtype or None, got {type(dtype).__name__}')
    if not (loss_scale == 'dynamic' or isinstance(loss_scale, (float, dict))):
        raise TypeError('AutoAmpOptimWrapper: loss_scale must be "dynamic", a '
                        f'float or a dict, got {loss_scale!r}')


def _log_once(message: str) -> None:
    if message not in _logged_choices:
        _logged_choices.add(message)
        print_log(message, logger='current')


@OPTIM_WRAPPERS.register_module()
class AutoAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` on an accelerator, plain ``OptimWrapper`` on CPU.

    Registered in MMEngine's root ``OPTIM_WRAPPERS``, so it resolves from
    every downstream scope (mmpretrain, mmseg, mmdet).

    Args:
        loss_scale (float | str | dict): GradScaler setting, as for
            ``AmpOptimWrapper``. Validated but unused on CPU.
        dtype (str | torch.dtype, optional): autocast dtype, e.g.
            ``'bfloat16'`` or ``'float16'``. Validated but unused on CPU.
        use_fsdp (bool): gradients are FSDP shards: use ``ShardedGradScaler``
            (accelerator only) and clip by the norm of the whole gradient,
            all-reduced over ranks (``sharded_clip_grad_norm_``).
        **kwargs: ``OptimWrapper`` arguments (optimizer, clip_grad,
            accumulative_counts).

    Attributes:
        amp_enabled (bool): Whether mixed precision is active.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False,
                 **kwargs):
        _check_amp_args(loss_scale, dtype)
        self.amp_enabled = amp_device_available()
        if self.amp_enabled:
            super().__init__(
                loss_scale=loss_scale,
                dtype=dtype,
                use_fsdp=use_fsdp,
                **kwargs)
            _log_once('AutoAmpOptimWrapper: accelerator found, mixed '
                      f'precision on (dtype={self.cast_dtype}, '
                      f'loss_scale={loss_scale!r})')
        else:
            OptimWrapper.__init__(self, **kwargs)
            self.loss_scaler = None
            self.cast_dtype = None
            self._scale_update_param = None
            _log_once('AutoAmpOptimWrapper: no CUDA/NPU/MLU/MUSA device, '
                      'training in full precision as OptimWrapper')
        if use_fsdp and getattr(self, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            self.clip_func = sharded_clip_grad_norm_

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Scaled backward with AMP, plain backward otherwise."""
        if self.amp_enabled:
            super().backward(loss, **kwargs)
        else:
            OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs) -> None:
        """GradScaler step with AMP, plain (clipped) step otherwise."""
        if self.amp_enabled:
            super().step(**kwargs)
        else:
            OptimWrapper.step(self, **kwargs)

    def state_dict(self) -> dict:
        """Optimizer state, plus ``loss_scaler`` when AMP is on."""
        if self.amp_enabled:
            return super().state_dict()
        return OptimWrapper.state_dict(self)

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved with or without AMP.

        On CPU a ``loss_scaler`` entry (checkpoint from an AMP run) is
        dropped: there is no GradScaler to restore it into.
        """
        if self.amp_enabled:
            super().load_state_dict(state_dict)
            return
        if state_dict.pop('loss_scaler', None) is not None:
            _log_once('AutoAmpOptimWrapper: ignoring the loss_scaler state of '
                      'an AMP checkpoint (running without AMP)')
        OptimWrapper.load_state_dict(self, state_dict)

    def optim_context(self, model: nn.Module) -> AbstractContextManager:
        """Autocast + gradient-sync context with AMP; sync-only otherwise."""
        if self.amp_enabled:
            return super().optim_context(model)
        return OptimWrapper.optim_context(self, model)
