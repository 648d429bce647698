import math

from mmpretrain.registry import PARAM_SCHEDULERS

from .warmup_cosine_base import WarmupCosineSchedulerBase


@PARAM_SCHEDULERS.register_module()
class WarmupCosineParamScheduler(WarmupCosineSchedulerBase):
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
        **kwargs: ``begin``, ``end`` (the step at which the cosine reaches
            ``final_value``; required), ``last_step``, ``by_epoch``, ``verbose``, as in
            :class:`WarmupCosineSchedulerBase`.
    """

    def __init__(self, optimizer, param_name, final_value, warmup=0, start_factor=0.0, **kwargs):
        self.final_value, self.start_factor = final_value, start_factor
        super().__init__(optimizer, param_name, warmup=warmup, **kwargs)

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
