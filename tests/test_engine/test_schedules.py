"""Schedules reproduce the released code's values (recorded in the parity file:
iteration 2000 of 200 epochs x 100 iterations, 20 warm-up epochs, 30 temperature
warm-up epochs)."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from pera_mm.engine.hooks import CenterUpdateHook, TeacherEMAHook, TeacherTemperatureHook
from pera_mm.engine.schedulers import WarmupCosineParamScheduler
from pera_mm.models.losses import DINOClsLoss

IT, EPOCH_LEN, EPOCHS = 2000, 100, 200


def test_teacher_momentum_cosine():
    hook = TeacherEMAHook(momentum=0.992)
    assert hook.momentum_at(0, 20000) == pytest.approx(0.992, abs=1e-15)
    assert hook.momentum_at(IT, EPOCHS * EPOCH_LEN) == pytest.approx(0.9921957739348194, abs=1e-15)
    assert hook.momentum_at(10000, 20000) == pytest.approx(0.996, abs=1e-15)
    assert hook.momentum_at(20000, 20000) == 1.0


def test_teacher_temperature_warmup_then_flat():
    hook = TeacherTemperatureHook(0.03, 0.05, warmup_iters=30 * EPOCH_LEN)
    assert hook.temperature_at(0, 3000) == 0.03
    assert hook.temperature_at(IT, 3000) == pytest.approx(0.043337779259753254, abs=1e-15)
    assert hook.temperature_at(2999, 3000) == pytest.approx(0.05, abs=1e-15)
    assert hook.temperature_at(10**6, 3000) == 0.05
    with pytest.raises(ValueError, match='exactly one of warmup_epochs or warmup_iters'):
        TeacherTemperatureHook(0.03, 0.05, warmup_epochs=30, warmup_iters=3000)


def make_sched(param, **kw):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.04)
    return opt, WarmupCosineParamScheduler.build_iter_from_epoch(
        opt, param_name=param, begin=0, end=EPOCHS, epoch_length=EPOCH_LEN, **kw
    )


def test_weight_decay_cosine_rises_to_final_value():
    opt, sched = make_sched('weight_decay', final_value=0.2)
    assert opt.param_groups[0]['weight_decay'] == pytest.approx(0.04, abs=1e-15)
    for _ in range(IT):
        sched.step()
    assert opt.param_groups[0]['weight_decay'] == pytest.approx(0.043915478696387705, abs=1e-15)


def test_lr_warms_up_from_zero_then_cosine():
    opt, sched = make_sched('lr', final_value=1e-6, warmup=20)
    values = [opt.param_groups[0]['lr']]
    for _ in range(EPOCHS * EPOCH_LEN - 1):
        sched.step()
        values.append(opt.param_groups[0]['lr'])
    assert values[0] == 0.0
    assert values[1000] == pytest.approx(1e-3 * 1000 / 1999, abs=1e-15)
    assert values[IT] == pytest.approx(1e-3, abs=1e-15)  # the parity step's lr
    assert values[-1] == pytest.approx(1e-6, abs=1e-9)
    assert all(a >= b for a, b in zip(values[IT:], values[IT + 1 :]))


def test_scheduler_state_resumes_exactly():
    opt, sched = make_sched('lr', final_value=1e-6, warmup=20)
    for _ in range(2500):
        sched.step()
    opt2, sched2 = make_sched('lr', final_value=1e-6, warmup=20)
    sched2.load_state_dict(sched.state_dict())
    sched.step()
    sched2.step()
    assert opt2.param_groups[0]['lr'] == opt.param_groups[0]['lr']


class TinyAlgo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.student = torch.nn.Linear(2, 2)
        self.teacher = torch.nn.Linear(2, 2)
        self.cls_loss = DINOClsLoss(2)
        self.momenta = []

    def update_teacher(self, m):
        self.momenta.append(m)


def fake_runner(model, it, max_iters=20000, epoch_len=100):
    return SimpleNamespace(
        model=model,
        iter=it,
        max_iters=max_iters,
        train_dataloader=[None] * epoch_len,
        message_hub=MessageHub.get_instance('pera-test-hooks'),
        optim_wrapper=SimpleNamespace(last_step_skipped=False),  # a step that was applied
    )


def test_hooks_drive_the_model_at_the_runner_iteration():
    model = TinyAlgo()
    runner = fake_runner(model, IT)
    TeacherEMAHook(0.992).after_train_iter(runner, 0)
    assert model.momenta == [pytest.approx(0.9921957739348194, abs=1e-15)]
    TeacherTemperatureHook(0.03, 0.05, warmup_epochs=30).before_train_iter(runner, 0)
    assert model.cls_loss.teacher_temp == pytest.approx(0.043337779259753254, abs=1e-15)
    model.cls_loss.teacher_targets(torch.tensor([[1.0, 3.0]]))
    CenterUpdateHook().after_train_iter(runner, 0)
    torch.testing.assert_close(model.cls_loss.center, torch.tensor([[0.1, 0.3]]))
