# Copyright (c) pera-mm contributors. All rights reserved.
"""The collapse statistics every N iterations change nothing but when they are computed."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.hooks import RuntimeInfoHook
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from pera_mm.engine.hooks import CenterUpdateHook, CollapseMonitorHook, TeacherEMAHook
from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch
from pera_mm.utils import PeraConfigError

PERA = REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
MONITOR_KEYS = (
    'monitor_cls_cosine',
    'monitor_cls_erank',
    'monitor_target_entropy',
    'monitor_target_batch_entropy',
)
STEPS = 4


class Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


def run(interval, batches, steps=STEPS):
    """``steps`` hooked PerA steps (drop path 0) from seed 0; losses, logs and weights."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model, _ = build_small_model(PERA, prototypes=64)
        for m in model.modules():  # drop path 0: the runs see the same network
            if hasattr(m, 'drop_path_mode'):
                m.drop_path = 0.0
        optim = build_optim_wrapper(
            model,
            dict(
                type='AutoAmpOptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, eps=2e-5, weight_decay=0.04),
                clip_grad=dict(max_norm=3.0),
            ),
        )
    hub = MessageHub.get_instance(f'collapse-interval-{interval}-{id(batches)}')
    runner = SimpleNamespace(
        model=model, optim_wrapper=optim, message_hub=hub, iter=0, max_iters=100, logger=Logger()
    )
    optim.message_hub = hub
    hooks = [
        TeacherEMAHook(),
        CenterUpdateHook(),
        CollapseMonitorHook(interval=interval),
        RuntimeInfoHook(),
    ]
    hooks[2].before_train(runner)
    torch.manual_seed(1)
    logs = []
    for it in range(steps):
        runner.iter = it
        for h in hooks:
            h.before_train_iter(runner, it, batches[it])
        out = model.train_step(batches[it], optim)
        logs.append({k: float(v.detach()) for k, v in out.items()})
        for h in hooks:
            h.after_train_iter(runner, it, batches[it], out)
    hooks[2].after_train(runner)
    return logs, copy.deepcopy(model.state_dict()), model, hub


@pytest.fixture(scope='module')
def batches():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        _, transforms = build_small_model(PERA, prototypes=64)
    np.random.seed(0)
    return [synthetic_batch(transforms, 2, 80, seed=i) for i in range(STEPS)]


@pytest.fixture(scope='module')
def every_and_every_other(batches):
    return run(1, batches), run(2, batches)


def test_losses_and_weights_do_not_depend_on_the_interval(every_and_every_other):
    (logs1, state1, _, _), (logs2, state2, _, _) = every_and_every_other
    for it, (a, b) in enumerate(zip(logs1, logs2)):
        losses = sorted(k for k in a if k.startswith('loss'))
        assert losses == sorted(k for k in b if k.startswith('loss'))
        for k in losses:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), (it, k)
    assert logs1[-1]['loss'] != pytest.approx(logs1[0]['loss'], rel=1e-4)  # the runs trained
    assert set(state1) == set(state2)
    for k in state1:
        torch.testing.assert_close(state2[k], state1[k], atol=1e-5, rtol=1e-5, msg=k)


def test_statistics_on_monitored_iterations_only_and_unchanged(every_and_every_other):
    (logs1, _, model1, hub1), (logs2, _, model2, hub2) = every_and_every_other
    for it in range(STEPS):
        assert set(MONITOR_KEYS) <= set(logs1[it])
        monitored = (it + 1) % 2 == 0  # iterations 1 and 3
        assert (set(MONITOR_KEYS) <= set(logs2[it])) == monitored
        assert not (set(MONITOR_KEYS) & set(logs2[it])) or monitored
        if monitored:
            for k in MONITOR_KEYS:
                assert logs2[it][k] == pytest.approx(logs1[it][k], rel=1e-5, abs=1e-6), (it, k)
    # the message hub holds one value per monitored iteration
    assert len(hub1.get_scalar('train/monitor_cls_erank').data[0]) == STEPS
    assert len(hub2.get_scalar('train/monitor_cls_erank').data[0]) == STEPS // 2
    # after training the model has its own flag back
    assert model1.monitor is True and model2.monitor is True


def test_a_model_built_without_the_monitor_stays_without_it():
    model = SimpleNamespace(monitor=False)
    runner = SimpleNamespace(model=model, iter=1)
    hook = CollapseMonitorHook(interval=2)
    hook.before_train(runner)
    hook.before_train_iter(runner, 1)
    assert model.monitor is False
    hook.after_train(runner)
    assert model.monitor is False


def test_warning_window_counts_logged_values():
    hub = MessageHub.get_instance('collapse-interval-warning')
    runner = SimpleNamespace(model=SimpleNamespace(monitor=True), message_hub=hub, logger=Logger())
    hook = CollapseMonitorHook(max_cls_cosine=0.6, min_cls_erank=2.0, window=2, interval=3)
    hook.before_train(runner)
    flags = []
    for it in range(9):
        runner.iter = it
        hook.before_train_iter(runner, it)
        flags.append(runner.model.monitor)
        if runner.model.monitor:  # what RuntimeInfoHook logs on a monitored iteration
            hub.update_scalar('train/monitor_cls_cosine', 0.9 if it >= 5 else 0.3)
            hub.update_scalar('train/monitor_cls_erank', 10.0)
        hook.after_train_iter(runner, it)
    assert flags == [False, False, True] * 3
    # logged cosines 0.3 (iter 3), 0.9 (iter 6), 0.9 (iter 9): the 2-value mean crosses at 9
    assert len(runner.logger.warnings) == 1
    assert 'iter 9' in runner.logger.warnings[0] and '6 iterations' in runner.logger.warnings[0]


@pytest.mark.parametrize('bad', [0, -1, 1.5, True, '2'])
def test_bad_interval_names_the_field(bad):
    with pytest.raises(PeraConfigError, match=r'collapse_monitor\.interval must be a positive int'):
        CollapseMonitorHook(interval=bad)
    hook = CollapseMonitorHook()
    with pytest.raises(PeraConfigError, match=r'collapse_monitor\.interval'):
        hook.before_run(SimpleNamespace(cfg=dict(collapse_monitor=dict(interval=bad))))
