import math

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmpretrain.registry import PARAM_SCHEDULERS

from ...utils.errors import PeraConfigError


@PARAM_SCHEDULERS.register_module()
class WarmupCosineParamScheduler(_ParamScheduler):
    """Linear warm-up to the optimizer's base value, then a cosine to ``final_value``.

    Closed form, so the value at any step is exact (and exact after a resume):

    - steps ``i < W``: ``start + (base - start) * i / (W - 1)`` (endpoint-inclusive);
    - steps ``i >= W``: ``final + (base - final) * (1 + cos(pi * (i - W) / (T - W))) / 2``,

    with ``W = warmup`` and ``T = end - begin`` steps. ``final_value`` may exceed
    the base value (PerA's weight decay rises 0.04 -> 0.2). ``start_factor=0``
    starts the warm-up at exactly zero, which MMEngine's chainable ``LinearLR``
    cannot do.

    Args:
        optimizer (Optimizer | OptimWrapper): the optimizer whose parameter is scheduled.
        param_name (str): 'lr', 'weight_decay', ...
        final_value (float): value reached at ``end``.
        warmup (int | float): warm-up length in the scheduler's unit.
        start_factor (float): warm-up starts at ``start_factor * base``.
        begin (int): step at which the schedule starts.
        end (int): step at which the cosine reaches ``final_value``; required.
        last_step (int): the step of the last update (-1 before training).
        by_epoch (bool): whether the steps are epochs (True) or iterations.
        verbose (bool): print the value at each update.
    """

    def __init__(
        self,
        optimizer,
        param_name,
        final_value,
        warmup=0,
        start_factor=0.0,
        begin=0,
        end=INF,
        last_step=-1,
        by_epoch=True,
        verbose=False,
    ):
        if end == INF:
            raise PeraConfigError('WarmupCosineParamScheduler: end must be set (the cosine length)')
        if not 0 <= warmup < end - begin:
            raise PeraConfigError(
                f'WarmupCosineParamScheduler: warmup must be in [0, {end - begin}), got {warmup}'
            )
        self.final_value, self.warmup, self.start_factor = final_value, warmup, start_factor
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
            WarmupCosineParamScheduler: the same schedule counted in iterations.
        """
        if not by_epoch or not epoch_length:
            raise PeraConfigError(
                'WarmupCosineParamScheduler: converting to iterations needs '
                'by_epoch=True and the epoch length'
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
        """Value ``step`` steps after ``begin`` for a parameter whose base value is ``base``.

        Args:
            step (int): steps since ``begin``.
            base (float): the parameter's initial value (the cosine's peak).

        Returns:
            float: the scheduled value.
        """
        total = self.end - self.begin
        if step < self.warmup:
            start = self.start_factor * base
            return start + (base - start) * step / max(self.warmup - 1, 1)
        t = (step - self.warmup) / (total - self.warmup)
        return self.final_value + (base - self.final_value) * (1 + math.cos(math.pi * t)) / 2

    def _get_value(self):
        return [self.value_at(self.last_step, base) for base in self.base_values]
