from types import SimpleNamespace

from mmengine.logging import MessageHub

from pera_mm.engine.hooks import CollapseMonitorHook


class Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


def test_warns_once_when_cosine_rises_and_rank_falls():
    hub = MessageHub.get_instance('pera-test-collapse')
    runner = SimpleNamespace(message_hub=hub, logger=Logger(), iter=0)
    hook = CollapseMonitorHook(max_cls_cosine=0.6, min_cls_erank=2.0, window=3)
    # healthy, then collapsing: cosine 0.3 -> 0.9, effective rank 10 -> 1.2
    for it in range(12):
        runner.iter = it
        collapsing = it >= 6
        hub.update_scalar('train/monitor_cls_cosine', 0.9 if collapsing else 0.3)
        hub.update_scalar('train/monitor_cls_erank', 1.2 if collapsing else 10.0)
        hook.after_train_iter(runner, it)
        if it < 7:
            assert runner.logger.warnings == []  # window mean still below the limits
    assert len(runner.logger.warnings) == 2
    assert 'monitor_cls_cosine' in runner.logger.warnings[0]
    assert 'monitor_cls_erank' in runner.logger.warnings[1]
    assert 'iter 8' in runner.logger.warnings[0]  # mean of (0.3, 0.9, 0.9) crosses 0.6 at iter 8
