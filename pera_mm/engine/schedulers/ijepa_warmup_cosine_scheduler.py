# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA's lr and weight-decay schedules, stepped at the start of each iteration."""

import math

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmpretrain.registry import PARAM_SCHEDULERS

from ...utils.errors import PeraConfigError


@PARAM_SCHEDULERS.register_module()
class IJEPAWarmupCosineParamScheduler(_ParamScheduler):
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
        begin (int): step at which the schedule starts.
        end (int): step at which the cosine ends; required (the runner fills in the
            training length when it is not stated).
        last_step (int): the step of the last update (-1 before training).
        by_epoch (bool): whether the lengths are epochs (True) or iterations.
        verbose (bool): print the value at each update.
    """

    def __init__(
        self,
        optimizer,
        param_name,
        final_value,
        warmup=0,
        start_value=None,
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
        if warmup > 0 and start_value is None:
            raise PeraConfigError(f'{name}: a warm-up needs start_value (the first value)')
        self.final_value, self.warmup, self.start_value = final_value, warmup, start_value
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
            IJEPAWarmupCosineParamScheduler: the same schedule counted in iterations.
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

    def _get_value(self):
        return [self.value_at(self.last_step, base) for base in self.base_values]
