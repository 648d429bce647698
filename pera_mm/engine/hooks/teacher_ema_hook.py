# Copyright (c) pera-mm contributors. All rights reserved.
"""EMA update of the teacher after every optimizer step."""

import math
from typing import Optional

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.errors import PeraConfigError
from .config_field_hook import ConfigFieldHook


def cosine_momentum(it: int, total: int, base: float, end: float = 1.0) -> float:
    """EMA momentum rising from ``base`` at iteration 0 to ``end`` at ``total``."""
    return end - (end - base) * (math.cos(math.pi * it / total) + 1) / 2


@HOOKS.register_module()
class TeacherEMAHook(ConfigFieldHook):
    """After every optimizer step, move the teacher towards the student.

    The momentum follows a cosine from ``momentum`` (0.992 for ViT-B, 0.998 for
    the large models) to ``end_momentum`` over all training iterations. It is a
    pure function of ``runner.iter``, so a resumed run continues exactly.
    Unset arguments come from the config field ``teacher_ema``.

    Args:
        momentum (float, optional): momentum at iteration 0. Defaults to 0.992.
        end_momentum (float, optional): momentum at the last iteration.
            Defaults to 1.0.
        interval (int, optional): update every this many iterations. Defaults to 1.
    """

    priority = 'ABOVE_NORMAL'
    cfg_field = 'teacher_ema'
    defaults = dict(momentum=0.992, end_momentum=1.0, interval=1)

    def __init__(
        self,
        momentum: Optional[float] = None,
        end_momentum: Optional[float] = None,
        interval: Optional[int] = None,
    ):
        super().__init__(momentum=momentum, end_momentum=end_momentum, interval=interval)

    def configure(self, momentum, end_momentum, interval):
        """Check ``0 <= momentum <= end_momentum <= 1`` and store."""
        if not 0 <= momentum <= end_momentum <= 1:
            raise PeraConfigError(
                f'TeacherEMAHook: need 0 <= momentum <= end_momentum <= 1, '
                f'got {momentum}, {end_momentum}'
            )
        self.momentum, self.end_momentum, self.interval = momentum, end_momentum, interval

    def momentum_at(self, it: int, max_iters: int) -> float:
        """The momentum of iteration ``it`` in a run of ``max_iters``."""
        return cosine_momentum(it, max_iters, self.momentum, self.end_momentum)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """EMA step with this iteration's momentum."""
        if (runner.iter + 1) % self.interval:
            return
        if getattr(runner.optim_wrapper, 'last_step_skipped', False):
            return  # non-finite step: the student did not move, nor does the teacher
        m = self.momentum_at(runner.iter, runner.max_iters)
        get_ori_model(runner.model).update_teacher(m)
        runner.message_hub.update_scalar('train/teacher_momentum', m)
