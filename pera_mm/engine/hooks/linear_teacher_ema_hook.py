# Copyright (c) pera-mm contributors. All rights reserved.
"""EMA update of the target encoder with a linearly rising momentum (I-JEPA)."""

from mmpretrain.registry import HOOKS

from .teacher_ema_hook import TeacherEMAHook


def linear_momentum(it: int, total: int, base: float, end: float = 1.0) -> float:
    """``base + it * (end - base) / total``: I-JEPA's momentum of iteration ``it``.

    It starts at ``base`` at iteration 0 and would reach ``end`` at ``it = total``,
    one past the last iteration, as in the reference's generator.
    """
    return base + it * (end - base) / total


@HOOKS.register_module()
class LinearTeacherEMAHook(TeacherEMAHook):
    """After every optimizer step, move the target encoder towards the encoder.

    Like :class:`TeacherEMAHook` (settings from the config field ``teacher_ema``,
    skipped after a skipped optimizer step, a pure function of ``runner.iter`` so a
    resumed run continues exactly), but the momentum rises LINEARLY from
    ``momentum`` (I-JEPA: 0.996) at iteration 0 by ``(end_momentum - momentum) /
    max_iters`` per iteration. MMPretrain's ``CosineEMA`` is cosine only.

    Args:
        momentum (float, optional): momentum at iteration 0. Defaults to 0.996.
        end_momentum (float, optional): limit at ``max_iters``. Defaults to 1.0.
        interval (int, optional): update every this many iterations. Defaults to 1.
    """

    defaults = dict(momentum=0.996, end_momentum=1.0, interval=1)

    def momentum_at(self, it: int, max_iters: int) -> float:
        """The momentum of iteration ``it`` in a run of ``max_iters``."""
        return linear_momentum(it, max_iters, self.momentum, self.end_momentum)
