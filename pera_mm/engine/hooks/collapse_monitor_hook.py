from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CollapseMonitorHook(Hook):
    """Warn once when the logged collapse statistics cross their thresholds.

    PerA logs ``monitor_cls_cosine`` (mean pairwise cosine of teacher cls
    features), ``monitor_cls_erank`` (their effective rank) and
    ``monitor_target_entropy`` every iteration. A collapsing run shows the cosine
    rising towards 1 and the effective rank falling towards 1. Thresholds are
    checked on a running mean over ``window`` iterations after ``start_iter``.
    """

    def __init__(self, max_cls_cosine=0.6, min_cls_erank=2.0, window=10, start_iter=0):
        self.max_cls_cosine, self.min_cls_erank = max_cls_cosine, min_cls_erank
        self.window, self.start_iter = window, start_iter
        self.warned = set()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter < self.start_iter:
            return
        hub = runner.message_hub
        checks = (('monitor_cls_cosine', self.max_cls_cosine, 'above'),
                  ('monitor_cls_erank', self.min_cls_erank, 'below'))
        for key, limit, side in checks:
            name = f'train/{key}'
            if key in self.warned or name not in hub.log_scalars:
                continue
            value = hub.get_scalar(name).mean(self.window)
            if (value > limit) if side == 'above' else (value < limit):
                self.warned.add(key)
                runner.logger.warning(
                    f'possible collapse at iter {runner.iter + 1}: {key} = {value:.3f} is {side} '
                    f'{limit} (mean of last {self.window} iterations)')
