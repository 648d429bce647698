# Copyright (c) pera-mm contributors. All rights reserved.
"""Collapse statistics every ``interval`` iterations, and a one-time warning on them."""

from typing import Optional

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...utils.errors import PeraConfigError
from .config_field_hook import ConfigFieldHook


@HOOKS.register_module()
class CollapseMonitorHook(ConfigFieldHook):
    """Decide when PerA computes its collapse statistics; warn once when they cross a limit.

    PerA logs ``monitor_cls_cosine`` (mean pairwise cosine of teacher cls
    features), ``monitor_cls_erank`` (their effective rank, an SVD) and the
    teacher target entropies on the iterations its ``monitor`` flag is on. A
    collapsing run shows the cosine rising towards 1 and the effective rank
    falling towards 1. This hook turns the flag on for the iterations ``it``
    with ``(it + 1) % interval == 0`` and off for the others (when the model
    was built with ``monitor=False`` it stays off), so the SVD, the entropies
    and their four host syncs (logging reads each statistic with ``.item()``)
    cost one step in ``interval``. The statistics are logged without a gradient
    and never enter the loss, so the losses and the weights do not depend on it.

    Thresholds are checked on monitored iterations after ``start_iter``, on the
    running mean of the last ``window`` logged values (``window * interval``
    iterations). Unset arguments come from the config field ``collapse_monitor``.

    Args:
        max_cls_cosine (float, optional): warn above this mean cosine.
            Defaults to 0.6.
        min_cls_erank (float, optional): warn below this effective rank.
            Defaults to 2.0.
        window (int, optional): logged values in the running mean. Defaults to 10.
        start_iter (int, optional): first iteration checked. Defaults to 0.
        interval (int, optional): compute the statistics every this many
            iterations. Defaults to 1 (every iteration).
    """

    cfg_field = 'collapse_monitor'
    defaults = dict(max_cls_cosine=0.6, min_cls_erank=2.0, window=10, start_iter=0, interval=1)

    def __init__(
        self,
        max_cls_cosine: Optional[float] = None,
        min_cls_erank: Optional[float] = None,
        window: Optional[int] = None,
        start_iter: Optional[int] = None,
        interval: Optional[int] = None,
    ):
        self.warned = set()
        self._built_monitor = None  # the model's own flag, restored after training
        super().__init__(
            max_cls_cosine=max_cls_cosine,
            min_cls_erank=min_cls_erank,
            window=window,
            start_iter=start_iter,
            interval=interval,
        )

    def configure(self, max_cls_cosine, min_cls_erank, window, start_iter, interval):
        """Store the thresholds; ``interval`` must be a positive int."""
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise PeraConfigError(
                f'collapse_monitor.interval must be a positive int (iterations), got {interval!r}'
            )
        self.max_cls_cosine, self.min_cls_erank = max_cls_cosine, min_cls_erank
        self.window, self.start_iter, self.interval = window, start_iter, interval

    def is_monitored(self, it: int) -> bool:
        """Whether iteration ``it`` (0-based) computes the statistics."""
        return (it + 1) % self.interval == 0

    def before_train(self, runner):
        """Remember whether the model was built with its monitor on."""
        model = get_ori_model(runner.model)
        self._built_monitor = getattr(model, 'monitor', None)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Switch the model's statistics on for a monitored iteration, off otherwise."""
        if self._built_monitor is None:
            self.before_train(runner)
        if self._built_monitor:
            get_ori_model(runner.model).monitor = self.is_monitored(runner.iter)

    def after_train(self, runner):
        """Give the model back its own flag (evaluation and later runs see it unchanged)."""
        if self._built_monitor is not None:
            get_ori_model(runner.model).monitor = self._built_monitor

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Check the running means on monitored iterations and warn once per statistic."""
        if runner.iter < self.start_iter or not self.is_monitored(runner.iter):
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
                span = self.window * self.interval
                runner.logger.warning(
                    f'possible collapse at iter {runner.iter + 1}: {key} = {value:.3f} is {side} '
                    f'{limit} (mean of the last {self.window} logged values, {span} iterations)'
                )
