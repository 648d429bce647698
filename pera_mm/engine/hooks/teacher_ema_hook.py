import math

from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model
from mmpretrain.registry import HOOKS


def cosine_momentum(it, total, base, end=1.0):
    """EMA momentum rising from ``base`` at iteration 0 to ``end`` at ``total``."""
    return end - (end - base) * (math.cos(math.pi * it / total) + 1) / 2


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """After every optimizer step, move the teacher towards the student.

    The momentum follows a cosine from ``momentum`` (0.992 for ViT-B, 0.998 for
    the large models) to ``end_momentum`` over all training iterations. It is a
    pure function of ``runner.iter``, so a resumed run continues exactly.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, momentum=0.992, end_momentum=1.0, interval=1):
        if not 0 <= momentum <= end_momentum <= 1:
            raise ValueError(f'TeacherEMAHook: need 0 <= momentum <= end_momentum <= 1, got '
                             f'{momentum}, {end_momentum}')
        self.momentum, self.end_momentum, self.interval = momentum, end_momentum, interval

    def momentum_at(self, it, max_iters):
        return cosine_momentum(it, max_iters, self.momentum, self.end_momentum)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if (runner.iter + 1) % self.interval:
            return
        m = self.momentum_at(runner.iter, runner.max_iters)
        get_ori_model(runner.model).update_teacher(m)
        runner.message_hub.update_scalar('train/teacher_momentum', m)
