# Copyright (c) pera-mm contributors. All rights reserved.
"""Hooks read unset arguments from their config field; explicit arguments win."""

from types import SimpleNamespace

import pytest
from mmengine.config import Config

from pera_mm.engine.hooks import CollapseMonitorHook, TeacherEMAHook, TeacherTemperatureHook
from pera_mm.testing import REPO_ROOT
from pera_mm.utils import PeraConfigError


def _runner(**fields):
    return SimpleNamespace(cfg=Config(fields))


def test_fields_fill_unset_arguments():
    ema, temp, monitor = TeacherEMAHook(), TeacherTemperatureHook(), CollapseMonitorHook()
    assert (ema.momentum, temp.warmup_epochs, monitor.window) == (0.992, 30, 10)  # defaults
    runner = _runner(
        teacher_ema=dict(momentum=0.998),
        teacher_temp=dict(start_temp=0.02, end_temp=0.03),
        collapse_monitor=dict(window=20),
    )
    for hook in (ema, temp, monitor):
        hook.before_run(runner)
    assert (ema.momentum, ema.end_momentum) == (0.998, 1.0)
    assert (temp.start_temp, temp.end_temp, temp.warmup_epochs) == (0.02, 0.03, 30)
    assert monitor.window == 20
    assert ema.momentum_at(0, 100) == pytest.approx(0.998)


def test_explicit_arguments_win_over_the_field():
    hook = TeacherEMAHook(momentum=0.9)
    hook.before_run(_runner(teacher_ema=dict(momentum=0.998, end_momentum=0.999)))
    assert (hook.momentum, hook.end_momentum) == (0.9, 0.999)


def test_warmup_in_iterations_replaces_inherited_epochs():
    hook = TeacherTemperatureHook()
    hook.before_run(_runner(teacher_temp=dict(warmup_iters=50)))
    assert (hook.warmup_epochs, hook.warmup_iters) == (None, 50)
    assert hook.temperature_at(49, 50) == pytest.approx(0.05)


def test_unknown_or_invalid_field_values_fail_with_the_field_name():
    with pytest.raises(PeraConfigError, match=r"teacher_ema: unknown keys \['momentun'\]"):
        TeacherEMAHook().before_run(_runner(teacher_ema=dict(momentun=0.9)))
    with pytest.raises(PeraConfigError, match='0 <= momentum <= end_momentum <= 1'):
        TeacherEMAHook().before_run(_runner(teacher_ema=dict(momentum=1.5)))


def test_shipped_configs_resolve_their_hook_settings():
    large = Config.fromfile(REPO_ROOT / 'configs/pera/pera_vit-large-p16_8xb16-200e_rsrsd-448px.py')
    demo = Config.fromfile(REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py')
    ema, temp = TeacherEMAHook(), TeacherTemperatureHook()
    for hook in (ema, temp):
        hook.before_run(SimpleNamespace(cfg=large))
    assert (ema.momentum, temp.start_temp, temp.end_temp) == (0.998, 0.02, 0.03)
    temp.before_run(SimpleNamespace(cfg=demo))
    # the demo's warm-up ends inside its own run
    assert temp.warmup_epochs < demo.train_cfg.max_epochs
