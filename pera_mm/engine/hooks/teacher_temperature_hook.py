# Copyright (c) pera-mm contributors. All rights reserved.
"""Warm-up schedule of the teacher softmax temperature."""

from typing import Optional, Sequence

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.errors import PeraConfigError
from .config_field_hook import ConfigFieldHook


@HOOKS.register_module()
class TeacherTemperatureHook(ConfigFieldHook):
    """Linear warm-up of the teacher softmax temperature, then constant.

    ``temp(it) = start + (end - start) * it / (W - 1)`` for ``it < W`` and ``end``
    afterwards, with ``W`` warm-up iterations (``warmup_epochs`` times the epoch
    length when given in epochs). Sets the temperature of every loss module
    named in ``loss_names`` that exists on the model. Unset arguments come from
    the config field ``teacher_temp``.

    Args:
        start_temp (float, optional): temperature at iteration 0. Defaults to 0.03.
        end_temp (float, optional): temperature after the warm-up. Defaults to 0.05.
        warmup_epochs (float, optional): warm-up length in epochs.
        warmup_iters (int, optional): warm-up length in iterations; give exactly
            at most one of the two; ``warmup_iters`` wins over an inherited
            ``warmup_epochs``. Defaults to 30 epochs.
        loss_names (Sequence[str], optional): loss attributes of the model.
            Defaults to ('cls_loss', 'patch_loss').
    """

    cfg_field = 'teacher_temp'
    defaults = dict(
        start_temp=0.03,
        end_temp=0.05,
        warmup_epochs=30,
        warmup_iters=None,
        loss_names=('cls_loss', 'patch_loss'),
    )

    def __init__(
        self,
        start_temp: Optional[float] = None,
        end_temp: Optional[float] = None,
        warmup_epochs: Optional[float] = None,
        warmup_iters: Optional[int] = None,
        loss_names: Optional[Sequence[str]] = None,
    ):
        if warmup_epochs is not None and warmup_iters is not None:
            raise PeraConfigError(
                'TeacherTemperatureHook: give exactly one of warmup_epochs or warmup_iters'
            )
        super().__init__(
            start_temp=start_temp,
            end_temp=end_temp,
            warmup_epochs=warmup_epochs,
            warmup_iters=warmup_iters,
            loss_names=loss_names,
        )

    def configure(self, start_temp, end_temp, warmup_epochs, warmup_iters, loss_names):
        """Store the schedule; ``warmup_iters``, when set, replaces ``warmup_epochs``."""
        if warmup_iters is None and warmup_epochs is None:
            raise PeraConfigError('TeacherTemperatureHook: set warmup_epochs or warmup_iters')
        self.start_temp, self.end_temp = start_temp, end_temp
        if warmup_iters is not None:
            warmup_epochs = None
        self.warmup_epochs, self.warmup_iters = warmup_epochs, warmup_iters
        self.loss_names = tuple(loss_names)

    def temperature_at(self, it: int, warmup_iters: int) -> float:
        """The temperature of iteration ``it`` with ``warmup_iters`` warm-up iterations."""
        if it >= warmup_iters:
            return self.end_temp
        if warmup_iters <= 1:
            return self.start_temp
        return self.start_temp + (self.end_temp - self.start_temp) * it / (warmup_iters - 1)

    def _warmup_iters(self, runner):
        if self.warmup_iters is not None:
            return self.warmup_iters
        return int(self.warmup_epochs * len(runner.train_dataloader))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Set this iteration's temperature on the losses."""
        temp = self.temperature_at(runner.iter, self._warmup_iters(runner))
        model = get_ori_model(runner.model)
        for name in self.loss_names:
            loss = getattr(model, name, None)
            if loss is not None:
                loss.teacher_temp = temp
        runner.message_hub.update_scalar('train/teacher_temp', temp)
