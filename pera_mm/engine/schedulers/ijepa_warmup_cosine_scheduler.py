# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA's lr and weight-decay schedules, stepped at the start of each iteration."""

import math

from mmpretrain.registry import PARAM_SCHEDULERS

from ...utils.errors import PeraConfigError
from .warmup_cosine_base import WarmupCosineSchedulerBase


@PARAM_SCHEDULERS.register_module()
class IJEPAWarmupCosineParamScheduler(WarmupCosineSchedulerBase):
    """Linear warm-up from ``start_value``, then a cosine to ``final_value`` (I-JEPA).

    The reference steps its schedulers at the START of every iteration, so
    iteration ``i`` already uses the value of its step ``s = i + 1``. With
    ``W = warmup`` and ``T = end - begin`` (in iterations) and ``base`` the
    group's initial value (the reference's ``ref_lr`` / ``ref_wd``):

    - ``s < W``: ``start + (s / W) * (base - start)``;
    - otherwise ``final + (base - final) * (1 + cos(pi * (s - W) / (T - W))) / 2``,
      clamped to not pass ``final`` (the last iteration gets ``final`` exactly).

    For the learning rate: ``warmup`` 40 epochs, ``start_value`` 2e-4,
    ``final_value`` 1e-6. For weight decay: ``warmup=0``, ``final_value`` 0.4 (the
    cosine RISES from the optimizer's 0.04). Groups whose initial value is 0 stay at
    0 for the whole run: biases and 1-D tensors keep weight decay 0 (unlike
    :class:`WarmupCosineParamScheduler`, which moves every group to its final
    value). Closed form, so a resumed run continues exactly.

    Args:
        optimizer (Optimizer | OptimWrapper): the optimizer whose parameter is scheduled.
        param_name (str): 'lr' or 'weight_decay'.
        final_value (float): value at the last step.
        warmup (int | float): warm-up length. Defaults to 0 (none).
        start_value (float, optional): value the warm-up starts from; needed when
            ``warmup > 0``.
        **kwargs: ``begin``, ``end`` (the step at which the cosine ends; required, the
            runner fills in the training length when it is not stated), ``last_step``,
            ``by_epoch``, ``verbose``, as in :class:`WarmupCosineSchedulerBase`.
    """

    def __init__(self, optimizer, param_name, final_value, warmup=0, start_value=None, **kwargs):
        self.final_value, self.start_value = final_value, start_value
        super().__init__(optimizer, param_name, warmup=warmup, **kwargs)

    def _check_args(self):
        if self.warmup > 0 and self.start_value is None:
            raise PeraConfigError(
                f'{type(self).__name__}: a warm-up needs start_value (the first value)'
            )

    def value_at(self, step: int, base: float) -> float:
        """Value used at ``step`` steps after ``begin`` (the reference's step ``step + 1``).

        Args:
            step (int): steps since ``begin`` (0 = the first iteration).
            base (float): the group's initial value.

        Returns:
            float: the scheduled value (0 for a group whose initial value is 0).
        """
        if base == 0:
            return 0.0
        s, warmup, total = step + 1, self.warmup, self.end - self.begin
        if s < warmup:
            return self.start_value + (s / warmup) * (base - self.start_value)
        progress = (s - warmup) / max(1, total - warmup)
        value = self.final_value + (base - self.final_value) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        if self.final_value <= base:
            return max(self.final_value, value)
        return min(self.final_value, value)
