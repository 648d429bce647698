# Copyright (c) pera-mm contributors. All rights reserved.
"""An optimizer wrapper that uses AMP where it can and fp32 where it cannot.

MMEngine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device, so an AMP
config cannot run on a CPU-only machine (tests, CI, debugging). With
``type='AutoAmpOptimWrapper'`` the same config runs everywhere: on an
accelerator it IS ``AmpOptimWrapper`` (autocast ``dtype``, GradScaler
``loss_scale``); without one it behaves exactly like ``OptimWrapper``.

On both paths a step whose loss or gradient is not finite is skipped, as a
GradScaler skips an overflowing fp16 step: ``optimizer.step()`` is not called
(AdamW would otherwise still decay the weights and advance its moments and
step count), the gradients are zeroed, the skip is counted, and hooks that
update state from the step (teacher EMA, DINO centre) read
``last_step_skipped`` and leave their state alone.

Three speed switches, each measured in ``docs/benchmarks.md``: the non-finite check
can read the gradient clip's total norm instead of scanning every gradient
(``nonfinite_check``), a fused Adam / AdamW step can apply the clip's scaling
itself (``clip_in_step``), and a CPU with native bf16 can train under bf16
autocast (``cpu_bf16``, off by default).
"""

import logging
from contextlib import AbstractContextManager, contextmanager
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from ...utils.device import amp_device_available
from ...utils.errors import PeraConfigError, PeraConfigTypeError, PeraTrainingStopped
from .sharded_clip_grad import sharded_clip_grad_norm_

#: Key of the skip counters in the wrapper's state dict (present once a step was skipped).
NONFINITE_STATE_KEY = 'nonfinite_steps'
#: how a step is found non-finite: from the clip's total gradient norm, or gradient by gradient
NONFINITE_CHECKS = ('grad_norm', 'per_grad')

_logged_choices = set()


def _check_amp_args(loss_scale, dtype) -> None:
    """Validate the AMP arguments on every device.

    A config that is wrong for GPUs is also rejected on CPU (one-line message).
    """
    if isinstance(dtype, str):
        if dtype not in AmpOptimWrapper.valid_dtypes:
            raise PeraConfigError(
                f'AutoAmpOptimWrapper: dtype must be one of '
                f'{AmpOptimWrapper.valid_dtypes} or a torch.dtype, got '
                f'{dtype!r}'
            )
    elif dtype is not None and not isinstance(dtype, torch.dtype):
        raise PeraConfigTypeError(
            'AutoAmpOptimWrapper: dtype must be a str, a '
            f'torch.dtype or None, got {type(dtype).__name__}'
        )
    if not (loss_scale == 'dynamic' or isinstance(loss_scale, (float, dict))):
        raise PeraConfigTypeError(
            'AutoAmpOptimWrapper: loss_scale must be "dynamic", a '
            f'float or a dict, got {loss_scale!r}'
        )


def _log_once(message: str) -> None:
    if message not in _logged_choices:
        _logged_choices.add(message)
        print_log(message, logger='current')


def _nonfinite_grads(params: List[torch.Tensor]) -> Optional[torch.Tensor]:
    """A bool tensor: does any gradient hold an inf or NaN? (None without grads).

    One reduction per gradient and one per device, no host sync.
    """
    per_device: Dict[torch.device, List[torch.Tensor]] = {}
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            g = g.coalesce()._values()
        per_device.setdefault(g.device, []).append(torch.isfinite(g).all())
    if not per_device:
        return None
    flags = [torch.stack(f).all().logical_not() for f in per_device.values()]
    first = flags[0].device
    return torch.stack([f.to(first) for f in flags]).any()


def _rank_agreed_flag(flags: List[torch.Tensor]) -> torch.Tensor:
    """A (1,) float tensor, 1 when any flag on any rank is set (no flags: 0; no host sync)."""
    if flags:
        device = flags[0].device
        flag = torch.stack([f.to(device) for f in flags]).any().float().reshape(1)
    else:
        flag = torch.zeros(1)
    dist.all_reduce(flag, op='max')  # a no-op without a process group
    return flag


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX): the gate of ``cpu_bf16``."""
    check = getattr(torch.cpu, '_is_avx512_bf16_supported', None)
    return bool(check and check())


@OPTIM_WRAPPERS.register_module()
class AutoAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` on an accelerator, plain ``OptimWrapper`` on CPU.

    Registered in MMEngine's root ``OPTIM_WRAPPERS``, so it resolves from
    every downstream scope (mmpretrain, mmseg, mmdet).

    **Non-finite steps.** With ``skip_nonfinite`` (the default) every
    :meth:`step` first checks the loss(es) passed to :meth:`backward` since
    the last step and all gradients for inf/NaN. The flag is all-reduced
    (max) over the default process group, so under DDP/FSDP every rank skips
    together. A skipped step calls neither ``optimizer.step()`` nor the
    GradScaler's step; with AMP the loss scale backs off as GradScaler would
    (a static scale stays). :meth:`update_params` then zeroes the gradients
    as after any step. The skip is counted (``nonfinite_skips``, logged as
    the message-hub scalar ``train/nonfinite_skips`` from the first skip on), ``last_step_skipped``
    is set for the hooks of this iteration, and after
    ``max_consecutive_nonfinite`` skips in a row :class:`PeraTrainingStopped`
    is raised before anything is saved, so the last checkpoint is the last
    good state. The counters are part of :meth:`state_dict` (only once a
    step was skipped, so healthy runs save the same state as before) and
    come back on resume.

    **Finding a non-finite step cheaply.** With ``nonfinite_check='grad_norm'``
    (the default) and a norm clip (``clip_grad=dict(max_norm=...)``), the
    gradients are clipped first and the step is non-finite iff the clip's total
    norm is (a norm is finite iff every gradient is): one reduction the clip
    computes anyway instead of ``isfinite`` on every gradient, and one host
    sync per step for the skip decision and the ``grad_norm`` log together. A
    total norm that overflows fp32 (gradients around 1e19) also counts as
    non-finite; the clip would scale such a step to nothing anyway. Without a
    norm clip, and with ``'per_grad'``, every gradient is checked as before.

    **Clipping inside the step.** A fused Adam / AdamW (``fused=True``) divides
    every gradient by its ``grad_scale`` inside its kernel and stores the result
    back (PyTorch's AMP unscaling). With ``clip_in_step`` (the default), that
    check's norm clip hands its factor to the step as ``grad_scale = 1 / coef``
    instead of multiplying every gradient by ``coef`` first: one pass over the
    gradients fewer, the same update and the same clipped gradients afterwards
    (up to rounding: ``g / (1 / coef)`` for ``g * coef``). Other optimizers, AMP
    and sharded (FSDP) clipping keep the separate clip.

    Args:
        loss_scale (float | str | dict): GradScaler setting, as for
            ``AmpOptimWrapper``. Validated but unused on CPU.
        dtype (str | torch.dtype, optional): autocast dtype, e.g.
            ``'bfloat16'`` or ``'float16'``. Validated but unused on CPU.
        use_fsdp (bool): gradients are FSDP shards: use ``ShardedGradScaler``
            (accelerator only) and clip by the norm of the whole gradient,
            all-reduced over ranks (``sharded_clip_grad_norm_``).
        skip_nonfinite (bool): skip and count steps with a non-finite loss
            or gradient (see above). Defaults to True. When False, steps run
            exactly as in ``OptimWrapper``/``AmpOptimWrapper``.
        max_consecutive_nonfinite (int, optional): stop training with
            :class:`PeraTrainingStopped` after this many skipped steps in a
            row; None or 0 never stops. Defaults to 20 (fp16 loss scaling
            may skip a few steps at the start while its scale settles).
        nonfinite_check (str): ``'grad_norm'`` (default) or ``'per_grad'``;
            see above.
        cpu_bf16 (bool): without an accelerator, run the forward under bf16
            autocast (``torch.autocast('cpu', dtype=torch.bfloat16)``) on a
            CPU with native bf16 (``cpu_bf16_supported()``); other CPUs stay
            in fp32 and say so once. Defaults to False: fp32, the reference
            numerics. Its speed and accuracy are in ``docs/benchmarks.md``.
        clip_in_step (bool): let a fused Adam / AdamW step apply the norm
            clip (see above). Defaults to True.
        **kwargs: ``OptimWrapper`` arguments (optimizer, clip_grad,
            accumulative_counts).

    Attributes:
        amp_enabled (bool): Whether mixed precision is active.
        nonfinite_skips (int): Steps skipped since training began.
        consecutive_nonfinite (int): Steps skipped since the last applied step.
        last_step_skipped (bool): Whether this iteration's
            :meth:`update_params` skipped its optimizer step. Hooks that update
            state from a step read it through ``runner.optim_wrapper``.
    """

    def __init__(
        self,
        loss_scale: Union[str, float, dict] = 'dynamic',
        dtype: Union[str, torch.dtype, None] = None,
        use_fsdp: bool = False,
        skip_nonfinite: bool = True,
        max_consecutive_nonfinite: Optional[int] = 20,
        nonfinite_check: str = 'grad_norm',
        cpu_bf16: bool = False,
        clip_in_step: bool = True,
        **kwargs,
    ):
        _check_amp_args(loss_scale, dtype)
        if nonfinite_check not in NONFINITE_CHECKS:
            raise PeraConfigError(
                f'AutoAmpOptimWrapper: nonfinite_check must be one of {NONFINITE_CHECKS}, '
                f'got {nonfinite_check!r}'
            )
        if not isinstance(cpu_bf16, bool):
            raise PeraConfigTypeError(
                f'AutoAmpOptimWrapper: cpu_bf16 must be True or False, got {cpu_bf16!r}'
            )
        if not isinstance(clip_in_step, bool):
            raise PeraConfigTypeError(
                f'AutoAmpOptimWrapper: clip_in_step must be True or False, got {clip_in_step!r}'
            )
        if not isinstance(skip_nonfinite, bool):
            raise PeraConfigTypeError(
                f'AutoAmpOptimWrapper: skip_nonfinite must be True or False, got {skip_nonfinite!r}'
            )
        if max_consecutive_nonfinite is not None and (
            isinstance(max_consecutive_nonfinite, bool)
            or not isinstance(max_consecutive_nonfinite, int)
            or max_consecutive_nonfinite < 0
        ):
            raise PeraConfigError(
                'AutoAmpOptimWrapper: max_consecutive_nonfinite must be an '
                'int >= 0 (0 or None: never stop), got '
                f'{max_consecutive_nonfinite!r}'
            )
        self.amp_enabled = amp_device_available()
        if self.amp_enabled:
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            _log_once(
                'AutoAmpOptimWrapper: accelerator found, mixed '
                f'precision on (dtype={self.cast_dtype}, '
                f'loss_scale={loss_scale!r})'
            )
        else:
            OptimWrapper.__init__(self, **kwargs)
            self.loss_scaler = None
            self.cast_dtype = None
            self._scale_update_param = None
            _log_once(
                'AutoAmpOptimWrapper: no CUDA/NPU/MLU/MUSA device, '
                'training in full precision as OptimWrapper'
            )
        if use_fsdp and getattr(self, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            self.clip_func = sharded_clip_grad_norm_
        self.cpu_bf16 = cpu_bf16 and not self.amp_enabled and cpu_bf16_supported()
        if cpu_bf16 and not self.amp_enabled and not self.cpu_bf16:
            _log_once('AutoAmpOptimWrapper: cpu_bf16 asked, but this CPU has no native bf16; fp32')
        elif self.cpu_bf16:
            _log_once('AutoAmpOptimWrapper: bf16 autocast on the CPU (cpu_bf16=True)')
        self.nonfinite_check = nonfinite_check
        self.clip_in_step = clip_in_step
        self.skip_nonfinite = skip_nonfinite
        self.max_consecutive_nonfinite = max_consecutive_nonfinite or None
        self.nonfinite_skips = 0
        self.consecutive_nonfinite = 0
        self.last_step_skipped = False
        self._loss_nonfinite: Optional[torch.Tensor] = None

    def update_params(
        self,
        loss: torch.Tensor,
        step_kwargs: Optional[Dict] = None,
        zero_kwargs: Optional[Dict] = None,
    ) -> None:
        """Backward, then (when due) step and zero the gradients.

        ``last_step_skipped`` is reset first, so it describes this call.
        """
        self.last_step_skipped = False
        super().update_params(loss, step_kwargs=step_kwargs, zero_kwargs=zero_kwargs)

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Scaled backward with AMP, plain backward otherwise.

        With ``skip_nonfinite`` the loss is also remembered as finite or not
        (a device flag, no host sync) for the next :meth:`step`.
        """
        if self.skip_nonfinite:
            bad = torch.isfinite(loss.detach()).all().logical_not()
            self._loss_nonfinite = (
                bad
                if self._loss_nonfinite is None
                else (self._loss_nonfinite | bad.to(self._loss_nonfinite.device))
            )
        if self.amp_enabled:
            super().backward(loss, **kwargs)
        else:
            OptimWrapper.backward(self, loss, **kwargs)

    def step(self, **kwargs) -> None:
        """GradScaler step with AMP, plain (clipped) step otherwise.

        With ``skip_nonfinite``, nothing is applied when a loss since the last
        step or a gradient (on any rank) is not finite; see the class notes.

        Raises:
            PeraTrainingStopped: after ``max_consecutive_nonfinite`` skipped
                steps in a row.
        """
        if not self.skip_nonfinite:
            if self.amp_enabled:
                super().step(**kwargs)
            else:
                OptimWrapper.step(self, **kwargs)
            return
        if self.amp_enabled:
            # Unscaled grads are checked; GradScaler's own step then sees
            # them as unscaled and does not divide again.
            self.loss_scaler.unscale_(self.optimizer)
        if self._checks_by_grad_norm():
            # clip first; the total norm tells whether the step is finite
            if self._clip_and_check():
                self.optimizer.grad_scale = None
                self._skip()
                return
        else:
            if self._is_nonfinite():
                self._skip()
                return
            if self.clip_grad_kwargs:
                self._clip_grad()
        self.consecutive_nonfinite = 0
        if self.nonfinite_skips:  # healthy runs log exactly what they did before
            self.message_hub.update_scalar('train/nonfinite_skips', self.nonfinite_skips)
        if self.amp_enabled:
            self.loss_scaler.step(self.optimizer, **kwargs)
            self.loss_scaler.update(self._scale_update_param)
        else:
            self.optimizer.step(**kwargs)
            self.optimizer.grad_scale = None  # a clip handed to this step only

    def _checks_by_grad_norm(self) -> bool:
        """Whether this step's clip gives the total norm the non-finite check reads."""
        return (
            self.nonfinite_check == 'grad_norm'
            and bool(self.clip_grad_kwargs)
            and self.clip_func is not torch.nn.utils.clip_grad_value_
        )

    def _clip_and_check(self) -> bool:
        """Clip by the total norm; True when the step must be skipped (one host sync).

        The decision and the logged ``grad_norm`` come back from the device
        together. A skipped step logs no ``grad_norm``, as before the clip
        read the norm.
        """
        params = [
            p
            for group in self.optimizer.param_groups
            for p in group['params']
            if p.requires_grad and p.grad is not None
        ]
        flags = [] if self._loss_nonfinite is None else [self._loss_nonfinite]
        self._loss_nonfinite = None
        norm = self._clip(params) if params else None
        if norm is not None:
            flags.append(torch.isfinite(norm).logical_not())
        flag = _rank_agreed_flag(flags)
        if norm is None:
            return bool(flag.item())
        # one scalar read: the norm, or NaN when any rank's loss or gradient was not finite
        norm = norm.detach().float().reshape(1).to(flag.device)
        value = torch.where(flag > 0, torch.full_like(norm, float('nan')), norm).item()
        if value != value:  # NaN
            return True
        self.message_hub.update_scalar(f'train/{self.grad_name}', value)
        return False

    def _clips_in_step(self) -> bool:
        """Whether the norm clip's factor goes to a fused Adam / AdamW step (``clip_in_step``)."""
        opt = self.optimizer
        return (
            self.clip_in_step
            and not self.amp_enabled
            and self.clip_func is torch.nn.utils.clip_grad_norm_
            and isinstance(opt, (torch.optim.Adam, torch.optim.AdamW))
            and all(group.get('fused') for group in opt.param_groups)
        )

    def _clip(self, params: List[torch.Tensor]) -> torch.Tensor:
        """The total gradient norm; the gradients clipped now or by the step."""
        if not self._clips_in_step():
            return self.clip_func(params, **self.clip_grad_kwargs)
        kwargs = dict(self.clip_grad_kwargs)
        max_norm = kwargs.pop('max_norm')
        norm = torch.nn.utils.get_total_norm([p.grad for p in params], **kwargs)
        # clip_grad_norm_'s factor; the fused step divides every gradient by its inverse
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        self.optimizer.grad_scale = coef.float().reciprocal()
        return norm

    def _is_nonfinite(self) -> bool:
        """Whether this step must be skipped, agreed by all ranks (one host sync)."""
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        flags = [f for f in (self._loss_nonfinite, _nonfinite_grads(params)) if f is not None]
        self._loss_nonfinite = None
        return bool(_rank_agreed_flag(flags).item())

    def _skip(self) -> None:
        """Count a skipped step, back the loss scale off, stop after too many."""
        self.last_step_skipped = True
        self.nonfinite_skips += 1
        self.consecutive_nonfinite += 1
        if self.amp_enabled:
            self._back_off_loss_scale()
        self.message_hub.update_scalar('train/nonfinite_skips', self.nonfinite_skips)
        print_log(
            'AutoAmpOptimWrapper: non-finite loss or gradient, optimizer step skipped '
            f'({self.consecutive_nonfinite} in a row, {self.nonfinite_skips} in total)',
            logger='current',
            level=logging.WARNING,
        )
        limit = self.max_consecutive_nonfinite
        if limit is not None and self.consecutive_nonfinite >= limit:
            raise PeraTrainingStopped(
                f'{self.consecutive_nonfinite} consecutive steps had a '
                f'non-finite loss or gradient (max_consecutive_nonfinite={limit}); no weight '
                'was updated from them and the last checkpoint is the last good state'
            )

    def _back_off_loss_scale(self) -> None:
        """Do what GradScaler.update does after an overflow.

        A dynamic scale shrinks by ``backoff_factor`` and restarts its growth
        count; a static scale stays.
        """
        scaler = self.loss_scaler
        if not scaler.is_enabled():
            return
        if self._scale_update_param is not None:  # static scale
            scaler.update(self._scale_update_param)
            return
        scaler.update(scaler.get_scale() * scaler.get_backoff_factor())
        tracker = getattr(scaler, '_growth_tracker', None)
        if isinstance(tracker, torch.Tensor):
            tracker.zero_()

    def state_dict(self) -> dict:
        """Optimizer state, plus ``loss_scaler`` with AMP, plus the skip counters.

        The counters (``nonfinite_steps``) are saved once a step was skipped.
        """
        if self.amp_enabled:
            state = super().state_dict()
        else:
            state = OptimWrapper.state_dict(self)
        if self.nonfinite_skips or self.consecutive_nonfinite:
            state[NONFINITE_STATE_KEY] = dict(
                total=self.nonfinite_skips, consecutive=self.consecutive_nonfinite
            )
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved with or without AMP.

        On CPU a ``loss_scaler`` entry (checkpoint from an AMP run) is
        dropped: there is no GradScaler to restore it into. The skip counters
        are restored (zero when the state has none).
        """
        counters = state_dict.pop(NONFINITE_STATE_KEY, None) or {}
        self.nonfinite_skips = int(counters.get('total', 0))
        self.consecutive_nonfinite = int(counters.get('consecutive', 0))
        if self.amp_enabled:
            super().load_state_dict(state_dict)
            return
        if state_dict.pop('loss_scaler', None) is not None:
            _log_once(
                'AutoAmpOptimWrapper: ignoring the loss_scaler state of '
                'an AMP checkpoint (running without AMP)'
            )
        OptimWrapper.load_state_dict(self, state_dict)

    def optim_context(self, model: nn.Module) -> AbstractContextManager:
        """Autocast + gradient-sync context with AMP or ``cpu_bf16``; sync-only otherwise."""
        if self.amp_enabled:
            return super().optim_context(model)
        if self.cpu_bf16:
            return self._cpu_bf16_context(model)
        return OptimWrapper.optim_context(self, model)

    @contextmanager
    def _cpu_bf16_context(self, model: nn.Module):
        with OptimWrapper.optim_context(self, model):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                yield
