"""LatentMIM schedules at the first, a middle and the last iteration, against the
reference's formulas (``util/lr_sched.py``, ``main_lmim.py``), and the weight-decay
rules of its parameter groups over a whole run."""

import math

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, PARAM_SCHEDULERS

import pera_mm  # noqa: F401
from pera_mm.engine.hooks import LatentMIMScheduleHook
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'
SCHEDULE = REPO_ROOT / 'configs/_base_/schedules/latent_mim_adamw-300e.py'
LR, EPOCHS, WARMUP, ITERS_PER_EPOCH = 1.5e-4, 300, 30, 4


def reference_lr(epoch, lr=LR, warmup=WARMUP, epochs=EPOCHS, min_lr_frac=0.25):
    """The reference ``adjust_learning_rate`` at a fractional epoch."""
    min_lr = lr * min_lr_frac
    if epoch < warmup:
        return min_lr + (lr - min_lr) * epoch / warmup
    t = (epoch - warmup) / (epochs - warmup)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def reference_momentum(epoch, epochs=EPOCHS, target_mom=0.99):
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (1.0 - target_mom)


def reference_sim_target(epoch, epochs=EPOCHS, init=0.75, end=0.25):
    return 0.5 * (1 + math.cos(math.pi * epoch / epochs)) * (init - end) + end


CHECKPOINTS = (0, 57, 120, EPOCHS * ITERS_PER_EPOCH // 2 + 3, EPOCHS * ITERS_PER_EPOCH - 1)


@pytest.fixture(scope='module')
def model_and_wrapper():
    """The smoke model with the optimizer wrapper of the LatentMIM schedule config."""
    DefaultScope.get_instance('latent_mim_schedules', scope_name='mmpretrain')
    cfg = Config.fromfile(str(SMOKE))
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, Config.fromfile(str(SCHEDULE)).optim_wrapper)
    return model, wrapper


def test_lr_schedule_matches_the_reference_at_first_middle_last(model_and_wrapper):
    _, wrapper = model_and_wrapper
    (sched_cfg,) = Config.fromfile(str(SCHEDULE)).param_scheduler
    sched_cfg = dict(sched_cfg)
    sched_cfg.pop('convert_to_iter_based')
    sched_cfg.update(end=EPOCHS, epoch_length=ITERS_PER_EPOCH)
    cls = PARAM_SCHEDULERS.get(sched_cfg.pop('type'))
    scheduler = cls.build_iter_from_epoch(wrapper, **sched_cfg)
    wd_at_start = [g['weight_decay'] for g in wrapper.optimizer.param_groups]
    assert 0.0 in wd_at_start and 0.05 in wd_at_start
    seen = {}
    for it in range(EPOCHS * ITERS_PER_EPOCH):
        if it in CHECKPOINTS:
            seen[it] = {g['lr'] for g in wrapper.optimizer.param_groups}
            # every scheduler of the config runs: exempt groups stay at weight decay 0
            assert [g['weight_decay'] for g in wrapper.optimizer.param_groups] == wd_at_start
        scheduler.step()  # ParamSchedulerHook steps after every iteration
    assert len(Config.fromfile(str(SCHEDULE)).param_scheduler) == 1  # lr only, no wd schedule
    for it, lrs in seen.items():
        assert len(lrs) == 1  # every group on the same lr (no layer decay)
        assert lrs.pop() == pytest.approx(reference_lr(it / ITERS_PER_EPOCH), rel=1e-12)
    assert reference_lr(0) == pytest.approx(0.25 * LR)  # warm-up starts at 0.25 lr
    assert reference_lr(WARMUP) == pytest.approx(LR)


def test_weight_decay_rules_hold_for_the_whole_run(model_and_wrapper):
    model, wrapper = model_and_wrapper
    names = {id(p): n for n, p in model.named_parameters()}
    groups = wrapper.optimizer.param_groups
    for g in groups:
        assert tuple(g['betas']) == (0.9, 0.95) and g['eps'] == 1e-8
        for p in g['params']:
            name = names[id(p)]
            exempt = p.ndim <= 1 or 'embed' in name
            assert g['weight_decay'] == (0.0 if exempt else 0.05), name
    decayed = {names[id(p)] for g in groups if g['weight_decay'] for p in g['params']}
    assert {'backbone.cls_token', 'neck.cls_token', 'neck.mask_token'} <= decayed
    assert not {'backbone.patch_embed.weight', 'neck.embed.weight'} & decayed


def test_target_momentum_and_similarity_target():
    hook = LatentMIMScheduleHook()
    total = EPOCHS * ITERS_PER_EPOCH
    for it in CHECKPOINTS:
        m, sim, update = hook.values_at(it, total)
        assert m == pytest.approx(reference_momentum(it / ITERS_PER_EPOCH), rel=1e-12)
        assert sim == pytest.approx(reference_sim_target(it / ITERS_PER_EPOCH), rel=1e-12)
        assert update
    assert hook.values_at(0, total)[:2] == (pytest.approx(0.99), pytest.approx(0.75))
    assert hook.values_at(total // 2, total)[:2] == (pytest.approx(0.995), pytest.approx(0.5))
    # gradient accumulation: values of the window's first iteration, one EMA per window
    assert hook.values_at(6, total, accumulation=4) == (*hook.values_at(4, total)[:2], False)
    with pytest.raises(PeraConfigError, match='end_momentum'):
        LatentMIMScheduleHook(momentum=1.0, end_momentum=0.99)


def test_floor_scheduler_rejects_bad_settings(model_and_wrapper):
    _, wrapper = model_and_wrapper
    cls = PARAM_SCHEDULERS.get('WarmupCosineFloorParamScheduler')
    with pytest.raises(PeraConfigError, match='end must be set'):
        cls(wrapper, 'lr', floor_factor=0.25)
    with pytest.raises(PeraConfigError, match='floor_factor'):
        cls(wrapper, 'lr', floor_factor=1.5, end=10)
    with pytest.raises(PeraConfigError, match='warmup'):
        cls(wrapper, 'lr', floor_factor=0.25, warmup=10, end=10)
