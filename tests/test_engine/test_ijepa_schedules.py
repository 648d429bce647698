"""I-JEPA schedules: lr warm-up + cosine, weight decay cosine on decayed groups only,
linear EMA momentum; all at the first, a middle and the last iteration."""

import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import PARAM_SCHEDULERS

import pera_mm  # noqa: F401  (registration)
from pera_mm.engine.hooks import LinearTeacherEMAHook
from pera_mm.utils import PeraConfigError

IPE, EPOCHS, WARMUP = 10, 30, 4  # iterations per epoch, epochs, warm-up epochs
TOTAL = IPE * EPOCHS


class ReferenceSchedules:
    """The reference's stateful schedules (src/utils/schedulers.py semantics, as described
    in parity-ijepa.md), stepped once at the start of every iteration."""

    def __init__(self, start_lr, ref_lr, final_lr, warmup_steps, t_max, ref_wd, final_wd):
        self.start_lr, self.ref_lr, self.final_lr = start_lr, ref_lr, final_lr
        self.warmup, self.t_max = warmup_steps, t_max
        self.ref_wd, self.final_wd = ref_wd, final_wd
        self.step_count = 0

    def step(self):
        self.step_count += 1
        s = self.step_count
        if s < self.warmup:
            lr = self.start_lr + s / max(1, self.warmup) * (self.ref_lr - self.start_lr)
        else:
            progress = (s - self.warmup) / max(1, self.t_max - self.warmup)
            cos = 0.5 * (1.0 + math.cos(math.pi * progress))
            lr = max(self.final_lr, self.final_lr + (self.ref_lr - self.final_lr) * cos)
        progress = s / self.t_max
        wd = self.final_wd + (self.ref_wd - self.final_wd) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )
        wd = min(self.final_wd, wd) if self.final_wd > self.ref_wd else max(self.final_wd, wd)
        return lr, wd


def make_wrapper():
    w, b = torch.nn.Parameter(torch.zeros(3, 3)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW(
        [dict(params=[w], weight_decay=0.04), dict(params=[b], weight_decay=0.0)],
        lr=1e-3,
    )
    return OptimWrapper(optimizer=opt)


def build(wrapper, **cfg):
    # a session fixture's Runner elsewhere may have left another toolbox's scope current
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return PARAM_SCHEDULERS.build(
            dict(type='IJEPAWarmupCosineParamScheduler', optimizer=wrapper, **cfg)
        )


def ijepa_schedulers(wrapper):
    """As configs/_base_/schedules/ijepa_adamw-300e.py, converted from epochs."""
    common = dict(by_epoch=True, end=EPOCHS, epoch_length=IPE)
    cls = PARAM_SCHEDULERS.get('IJEPAWarmupCosineParamScheduler')
    lr = cls.build_iter_from_epoch(
        wrapper, 'lr', final_value=1e-6, warmup=WARMUP, start_value=2e-4, **common
    )
    wd = cls.build_iter_from_epoch(wrapper, 'weight_decay', final_value=0.4, **common)
    return [lr, wd]


def test_lr_and_weight_decay_follow_the_reference_at_every_iteration():
    wrapper = make_wrapper()
    schedulers = ijepa_schedulers(wrapper)
    ref = ReferenceSchedules(2e-4, 1e-3, 1e-6, WARMUP * IPE, TOTAL, 0.04, 0.4)
    seen = {}
    for it in range(TOTAL):  # MMEngine: values set at build, then after every iteration
        lr, wd = ref.step()  # the reference: stepped before the forward of iteration `it`
        decayed, exempt = wrapper.optimizer.param_groups
        assert decayed['lr'] == pytest.approx(lr, rel=1e-12) == exempt['lr']
        assert decayed['weight_decay'] == pytest.approx(wd, rel=1e-12)
        assert exempt['weight_decay'] == 0.0  # biases / 1-D tensors: 0 for the whole run
        seen[it] = (decayed['lr'], decayed['weight_decay'])
        for s in schedulers:
            s.step()
    first, middle, last = seen[0], seen[TOTAL // 2], seen[TOTAL - 1]
    # iteration 0 already uses the first step: 2e-4 + (1e-3 - 2e-4) / 40
    assert first[0] == pytest.approx(2e-4 + 8e-4 / (WARMUP * IPE))
    assert first[1] == pytest.approx(0.4 - 0.36 * 0.5 * (1 + math.cos(math.pi / TOTAL)))
    # the middle of the run: half way through the wd cosine
    assert middle[1] == pytest.approx(0.4 - 0.36 * 0.5 * (1 + math.cos(math.pi * 151 / 300)))
    s_mid = TOTAL // 2 + 1 - WARMUP * IPE
    assert middle[0] == pytest.approx(
        1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * s_mid / (TOTAL - WARMUP * IPE)))
    )
    assert last == (pytest.approx(1e-6), pytest.approx(0.4))  # the final values exactly


def test_schedules_resume_from_the_iteration():
    """Closed form: a scheduler rebuilt at iteration k (last_step=k-1) gives the same value."""
    wrapper = make_wrapper()
    schedulers = ijepa_schedulers(wrapper)
    for _ in range(123):
        for s in schedulers:
            s.step()
    expected = [dict(g) for g in wrapper.optimizer.param_groups]
    values = [s.value_at(123, s.base_values[0]) for s in schedulers]
    assert values == [expected[0]['lr'], expected[0]['weight_decay']]


def test_bad_schedule_settings():
    wrapper = make_wrapper()
    with pytest.raises(PeraConfigError, match='start_value'):
        build(wrapper, param_name='lr', final_value=1e-6, warmup=5, end=10, by_epoch=False)
    with pytest.raises(PeraConfigError, match='end must be set'):
        build(wrapper, param_name='lr', final_value=1e-6, by_epoch=False)


@pytest.mark.parametrize('it', [0, TOTAL // 2, TOTAL - 1])
def test_linear_ema_momentum(it):
    hook = LinearTeacherEMAHook()
    expected = 0.996 + it * (1.0 - 0.996) / TOTAL  # the reference's generator
    assert hook.momentum_at(it, TOTAL) == pytest.approx(expected, rel=1e-15)
    assert hook.momentum_at(0, TOTAL) == 0.996
    assert hook.momentum_at(TOTAL - 1, TOTAL) < 1.0
