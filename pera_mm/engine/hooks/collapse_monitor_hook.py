# Copyright (c) pera-mm contributors. All rights reserved.
"""A one-time warning when the teacher's logged statistics look collapsed."""

from typing import Optional

from mmpretrain.registry import HOOKS

from .config_field_hook import ConfigFieldHook


@HOOKS.register_module()
class CollapseMonitorHook(ConfigFieldHook):
    """Warn once when the logged collapse statistics cross their thresholds.

    PerA logs ``monitor_cls_cosine`` (mean pairwise cosine of teacher cls
    features), ``monitor_cls_erank`` (their effective rank) and
    ``monitor_target_entropy`` every iteration. A collapsing run shows the cosine
    rising towards 1 and the effective rank falling towards 1. Thresholds are
    checked on a running mean over ``window`` iterations after ``start_iter``.
    Unset arguments come from the config field ``collapse_monitor``.

    Args:
        max_cls_cosine (float, optional): warn above this mean cosine.
            Defaults to 0.6.
        min_cls_erank (float, optional): warn below this effective rank.
            Defaults to 2.0.
        window (int, optional): iterations of the running mean. Defaults to 10.
        start_iter (int, optional): first iteration checked. Defaults to 0.
    """

    cfg_field = 'collapse_monitor'
    defaults = dict(max_cls_cosine=0.6, min_cls_erank=2.0, window=10, start_iter=0)

    def __init__(
        self,
        max_cls_cosine: Optional[float] = None,
        min_cls_erank: Optional[float] = None,
        window: Optional[int] = None,
        start_iter: Optional[int] = None,
    ):
        self.warned = set()
        super().__init__(
            max_cls_cosine=max_cls_cosine,
            min_cls_erank=min_cls_erank,
            window=window,
            start_iter=start_iter,
        )

    def configure(self, max_cls_cosine, min_cls_erank, window, start_iter):
        """Store the thresholds."""
        self.max_cls_cosine, self.min_cls_erank = max_cls_cosine, min_cls_erank
        self.window, self.start_iter = window, start_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Check the running means and warn once per statistic."""
        if runner.iter < self.start_iter:
            return
        hub = runner.message_hub
        checks = (
            ('monitor_cls_cosine', self.max_cls_cosine, 'above'),
            ('monitor_cls_erank', self.min_cls_erank, 'below'),
        )
        for key, limit, side in checks:
            name = f'train/{key}'
            if key in self.warned or name not in hub.log_scalars:
                continue
            value = hub.get_scalar(name).mean(self.window)
            if (value > limit) if side == 'above' else (value < limit):
                self.warned.add(key)
                runner.logger.warning(
                    f'possible collapse at iter {runner.iter + 1}: {key} = {value:.3f} is {side} '
                    f'{limit} (mean of last {self.window} iterations)'
                )
