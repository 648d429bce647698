# Copyright (c) pera-mm contributors. All rights reserved.
"""Warm-up from a floor to the base value, then a cosine back to the floor (MAE / LatentMIM)."""

import math

from mmpretrain.registry import PARAM_SCHEDULERS

from ...utils.errors import PeraConfigError
from .warmup_cosine_base import WarmupCosineSchedulerBase


@PARAM_SCHEDULERS.register_module()
class WarmupCosineFloorParamScheduler(WarmupCosineSchedulerBase):
    """The ``adjust_learning_rate`` of the MAE / LatentMIM code, in closed form.

    With ``floor = floor_factor * base``, ``W = warmup`` and ``T = end - begin``
    steps, the value at step ``i`` after ``begin`` is

    - ``i < W``: ``floor + (base - floor) * i / W`` (the warm-up starts AT the
      floor and reaches ``base`` at step ``W``, which is the cosine's first step);
    - ``i >= W``: ``floor + (base - floor) * (1 + cos(pi * (i - W) / (T - W))) / 2``.

    LatentMIM: ``floor_factor=0.25`` (``min_lr_frac``), 30 warm-up epochs over
    300, counted in fractional epochs (``convert_to_iter_based=True``). Unlike
    ``WarmupCosineParamScheduler`` the floor is relative to each group's base
    value and the warm-up is not endpoint-inclusive.

    Args:
        optimizer (Optimizer | OptimWrapper): the optimizer whose parameter is scheduled.
        param_name (str): 'lr', 'weight_decay', ...
        floor_factor (float): floor / base, in [0, 1].
        warmup (int | float): warm-up length in the scheduler's unit.
        **kwargs: ``begin``, ``end`` (the step at which the cosine reaches the floor;
            required), ``last_step``, ``by_epoch``, ``verbose``, as in
            :class:`WarmupCosineSchedulerBase`.
    """

    def __init__(self, optimizer, param_name, floor_factor=0.0, warmup=0, **kwargs):
        self.floor_factor = floor_factor
        super().__init__(optimizer, param_name, warmup=warmup, **kwargs)

    def _check_args(self):
        if not 0 <= self.floor_factor <= 1:
            raise PeraConfigError(
                f'{type(self).__name__}: floor_factor must be in [0, 1], got {self.floor_factor}'
            )

    def value_at(self, step, base):
        """Value ``step`` steps after ``begin`` for a group whose base value is ``base``.

        Args:
            step (int): steps since ``begin``.
            base (float): the group's initial value (the peak).

        Returns:
            float: the scheduled value.
        """
        floor = self.floor_factor * base
        if step < self.warmup:
            return floor + (base - floor) * step / self.warmup
        t = (step - self.warmup) / (self.end - self.begin - self.warmup)
        return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
