# Copyright (c) pera-mm contributors. All rights reserved.
"""What the closed-form warm-up + cosine schedulers share: checks, epoch conversion, stepping."""

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from ...utils.errors import PeraConfigError


class WarmupCosineSchedulerBase(_ParamScheduler):
    """Base of the schedulers that give a warm-up then a cosine in closed form.

    A subclass defines :meth:`value_at` (the value ``step`` steps after
    ``begin`` for a group whose initial value is ``base``) and may check its own
    arguments in :meth:`_check_args`. The value at every step is computed from
    the step alone, so a resumed run continues exactly.

    Args:
        optimizer (Optimizer | OptimWrapper): the optimizer whose parameter is scheduled.
        param_name (str): 'lr', 'weight_decay', ...
        warmup (int | float): warm-up length in the scheduler's unit.
        begin (int): step at which the schedule starts.
        end (int): step at which the cosine ends; required.
        last_step (int): the step of the last update (-1 before training).
        by_epoch (bool): whether the steps are epochs (True) or iterations.
        verbose (bool): print the value at each update.
    """

    def __init__(
        self,
        optimizer,
        param_name,
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
        self.warmup = warmup
        self._check_args()
        super().__init__(
            optimizer,
            param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose,
        )

    def _check_args(self):
        """Check the subclass's own arguments (already set as attributes); raise PeraConfigError."""

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
            WarmupCosineSchedulerBase: the same schedule (of the calling class) counted in
            iterations.
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
        """Value ``step`` steps after ``begin`` for a group whose initial value is ``base``.

        Args:
            step (int): steps since ``begin``.
            base (float): the group's initial value.

        Returns:
            float: the scheduled value.
        """
        raise NotImplementedError

    def _get_value(self):
        return [self.value_at(self.last_step, base) for base in self.base_values]
