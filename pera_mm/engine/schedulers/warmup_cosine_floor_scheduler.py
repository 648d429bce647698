# Copyright (c) pera-mm contributors. All rights reserved.
"""Warm-up from a floor to the base value, then a cosine back to the floor (MAE / LatentMIM)."""

import math

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmpretrain.registry import PARAM_SCHEDULERS

from ...utils.errors import PeraConfigError


@PARAM_SCHEDULERS.register_module()
class WarmupCosineFloorParamScheduler(_ParamScheduler):
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
        begin (int): step at which the schedule starts.
        end (int): step at which the cosine reaches the floor; required.
        last_step (int): the step of the last update (-1 before training).
        by_epoch (bool): whether the steps are epochs (True) or iterations.
        verbose (bool): print the value at each update.
    """

    def __init__(
        self,
        optimizer,
        param_name,
        floor_factor=0.0,
        warmup=0,
        begin=0,
        end=INF,
        last_step=-1,
        by_epoch=True,
        verbose=False,
    ):
        name = type(self).__name__
        if end == INF:
            raise PeraConfigError(f'{name}: end must be set (the cosine length)')
        if not 0 <= warmup < end - begin:
            raise PeraConfigError(f'{name}: warmup must be in [0, {end - begin}), got {warmup}')
        if not 0 <= floor_factor <= 1:
            raise PeraConfigError(f'{name}: floor_factor must be in [0, 1], got {floor_factor}')
        self.floor_factor, self.warmup = floor_factor, warmup
        super().__init__(
            optimizer,
            param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose,
        )

    @classmethod
    def build_iter_from_epoch(
        cls, *args, warmup=0, begin=0, end=INF, by_epoch=True, epoch_length=None, **kwargs
    ):
        """Build the scheduler from epoch-based ``warmup``/``begin``/``end``.

        Args:
            *args: positional arguments of the constructor.
            warmup (int | float): warm-up length in epochs.
            begin (int | float): first epoch of the schedule.
            end (int | float): last epoch (exclusive) of the cosine; must be set.
            by_epoch (bool): must be True (the given lengths are in epochs).
            epoch_length (int): iterations per epoch.
            **kwargs: keyword arguments of the constructor.

        Returns:
            WarmupCosineFloorParamScheduler: the same schedule counted in iterations.
        """
        if not by_epoch or not epoch_length:
            raise PeraConfigError(
                f'{cls.__name__}: converting to iterations needs by_epoch=True and the epoch length'
            )
        end = end if end == INF else int(end * epoch_length)
        return cls(
            *args,
            warmup=int(warmup * epoch_length),
            begin=int(begin * epoch_length),
            end=end,
            by_epoch=False,
            **kwargs,
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

    def _get_value(self):
        return [self.value_at(self.last_step, base) for base in self.base_values]
