# Copyright (c) pera-mm contributors. All rights reserved.
"""The step-speed switches of issue 23 compute what the forms they replace compute.

- ``AutoAmpOptimWrapper(nonfinite_check='grad_norm')``: the same skip decisions on
  injected inf/NaN gradients and losses and the same updates as ``'per_grad'``,
  with one host sync per step instead of two;
- ``AutoAmpOptimWrapper(clip_in_step=True)``: a fused AdamW that applies the norm
  clip itself gives the weights and clipped gradients of the separate clip (1e-6);
- ``PerA(ema_update='lerp')``: the teacher the two-pass form gives (1e-6);
- ``AutoAmpOptimWrapper(cpu_bf16=True)``: a PerA step within loss 2e-2 (relative)
  and gradient cosine 0.99 of the fp32 step, on CPUs with native bf16.
"""

import copy

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from torch.profiler import ProfilerActivity, profile

from pera_mm.engine.optimizers import AutoAmpOptimWrapper
from pera_mm.engine.optimizers.auto_amp_optim_wrapper import cpu_bf16_supported
from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch
from pera_mm.utils.errors import PeraConfigError

PERA = REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
#: step -> what is injected: a bad gradient entry, a bad loss, or nothing
INJECTIONS = [None, ('grad', float('inf')), ('grad', float('nan')), None, ('loss', 'inf'), None]
BF16_LOSS_RTOL, BF16_GRAD_COSINE = 2e-2, 0.99


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 3))


def _wrapper(net, check, clip=True, fused=None, clip_in_step=True):
    return AutoAmpOptimWrapper(
        optimizer=torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=0.1, fused=fused),
        clip_grad=dict(max_norm=0.5) if clip else None,
        nonfinite_check=check,
        max_consecutive_nonfinite=None,
        clip_in_step=clip_in_step,
    )


def _run(check, clip=True, **wrapper_kwargs):
    """Weights after every step, skip flags, logged grad norms and gradients of the injected run."""
    net = _net()
    wrapper = _wrapper(net, check, clip, **wrapper_kwargs)
    hub = MessageHub.get_current_instance()
    torch.manual_seed(1)
    weights, skipped, norms, grads = [], [], [], []
    for inject in INJECTIONS:
        x, y = torch.randn(8, 6), torch.randn(8, 3)
        loss = (net(x) - y).square().mean()
        if inject == ('loss', 'inf'):
            loss = loss * float('inf')
        before = wrapper.nonfinite_skips
        wrapper.backward(loss)
        if inject is not None and inject[0] == 'grad':
            net[2].weight.grad[1, 3] = inject[1]
        hub.update_scalar('train/grad_norm', -1.0)
        wrapper.step()
        grads.append([p.grad.clone() for p in net.parameters()])
        wrapper.zero_grad()
        skipped.append(wrapper.nonfinite_skips > before)
        norms.append(hub.get_scalar('train/grad_norm').current())
        weights.append([p.detach().clone() for p in net.parameters()])
    return weights, skipped, norms, wrapper, grads


def test_grad_norm_check_skips_the_same_steps_and_applies_the_same_updates():
    ref_w, ref_skip, ref_norm, _, _ = _run('per_grad')
    new_w, new_skip, new_norm, wrapper, _ = _run('grad_norm')
    assert wrapper._checks_by_grad_norm()
    assert ref_skip == new_skip == [False, True, True, False, True, False]
    for a, b in zip(ref_w, new_w):
        for p, q in zip(a, b):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)
    assert not torch.equal(ref_w[0][0], ref_w[-1][0])  # the applied steps moved the weights
    for skip, a, b in zip(ref_skip, ref_norm, new_norm):
        if skip:  # a skipped step logs no grad norm, in both forms
            assert a == b == -1.0
        else:
            assert a > 0.5 and a == pytest.approx(b, rel=1e-6)  # clipping was active


def test_without_a_norm_clip_the_check_reads_every_gradient():
    _, skipped, _, wrapper, _ = _run('grad_norm', clip=False)
    assert not wrapper._checks_by_grad_norm()
    assert skipped == [False, True, True, False, True, False]


def test_fused_adamw_applies_the_clip_with_the_same_weights_and_gradients():
    ref_w, ref_skip, ref_norm, ref, ref_g = _run('grad_norm', fused=True, clip_in_step=False)
    new_w, new_skip, new_norm, new, new_g = _run('grad_norm', fused=True)
    assert new._clips_in_step() and not ref._clips_in_step()
    assert new_skip == ref_skip == [False, True, True, False, True, False]
    assert new_norm == pytest.approx(ref_norm, rel=1e-6)
    assert all(n > 0.5 for n, skipped in zip(ref_norm, ref_skip) if not skipped)  # clip active
    for step, skipped in enumerate(ref_skip):
        # the gradients of a skipped step are dropped unused (the separate clip scaled them)
        pairs = (
            zip(ref_w[step], new_w[step])
            if skipped
            else zip(ref_w[step] + ref_g[step], new_w[step] + new_g[step])
        )
        for p, q in pairs:
            torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-6)
    assert new.optimizer.grad_scale is None  # handed to one step only
    assert not torch.equal(ref_w[0][0], ref_w[-1][0])
    # without a fused step, or with the switch off, the clip scales the gradients itself
    assert not _wrapper(_net(), 'grad_norm', fused=False)._clips_in_step()
    net = _net()
    wrapper = _wrapper(net, 'grad_norm', fused=True)
    wrapper.backward(net(torch.randn(4, 6)).square().sum())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wrapper.step()
    names = {ev.name for ev in prof.events()}
    assert 'aten::_fused_adamw_' in names and 'aten::_foreach_mul_' not in names


def _syncs_of_one_step(check):
    net = _net()
    wrapper = AutoAmpOptimWrapper(  # SGD: AdamW would add its step-counter reads
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        clip_grad=dict(max_norm=0.5),
        nonfinite_check=check,
    )
    wrapper.backward(net(torch.randn(4, 6)).square().mean())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wrapper.step()
    return sum(ev.name == 'aten::_local_scalar_dense' for ev in prof.events())


def test_grad_norm_check_needs_one_host_sync_instead_of_two():
    assert _syncs_of_one_step('per_grad') == 2  # the skip flag, then the logged grad norm
    assert _syncs_of_one_step('grad_norm') == 1  # both read together


def test_switches_are_validated():
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(PeraConfigError, match='nonfinite_check must be one of'):
        AutoAmpOptimWrapper(optimizer=opt, nonfinite_check='isfinite')
    with pytest.raises(PeraConfigError, match='cpu_bf16 must be True or False'):
        AutoAmpOptimWrapper(optimizer=opt, cpu_bf16='yes')
    with pytest.raises(PeraConfigError, match='clip_in_step must be True or False'):
        AutoAmpOptimWrapper(optimizer=opt, clip_in_step=1)


def _small_pera(**overrides):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model, transforms = build_small_model(PERA, prototypes=64)
    for name, value in overrides.items():
        setattr(model, name, value)
    return model, transforms


def test_lerp_ema_equals_the_two_pass_update():
    model, _ = _small_pera()
    with torch.no_grad():
        for i, p in enumerate(model.backbone.parameters()):
            p.add_(torch.randn_like(p) * 0.1 * (1 + i % 3))  # student away from the teacher
    other = copy.deepcopy(model)
    model.ema_update, other.ema_update = 'lerp', 'mul_add'
    for m in (0.9, 0.996, 0.5):
        model.update_teacher(m)
        other.update_teacher(m)
    teacher, student = model.ema_pairs()
    moved = sum((t - s).abs().sum() for t, s in zip(teacher, student))
    assert moved > 0
    for a, b in zip(teacher, other.ema_pairs()[0]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_ema_update_is_validated():
    from pera_mm.models.selfsup.pera import EMA_UPDATES

    assert EMA_UPDATES == ('lerp', 'mul_add')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from mmengine.config import Config
        from mmpretrain.registry import MODELS

        cfg = Config.fromfile(PERA).model
        cfg.ema_update = 'ema'
        with pytest.raises(PeraConfigError, match='ema_update must be one of'):
            MODELS.build(cfg)


def _loss_and_grads(model, data, wrapper):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)  # the same drop-path subsets in both steps
    with wrapper.optim_context(model):
        losses = model.loss(data['inputs'], data['data_samples'])
        loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.float().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), grads


@pytest.mark.skipif(not cpu_bf16_supported(), reason='this CPU has no native bf16')
def test_cpu_bf16_step_stays_within_tolerance_of_fp32():
    model, transforms = _small_pera()
    model.train()
    torch.manual_seed(0)
    batch = synthetic_batch(transforms, 4, 80, seed=3)
    data = model.data_preprocessor(batch, True)
    fp32 = AutoAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    bf16 = AutoAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.0), cpu_bf16=True)
    assert bf16.cpu_bf16 and not fp32.cpu_bf16
    loss32, g32 = _loss_and_grads(model, data, fp32)
    loss16, g16 = _loss_and_grads(model, data, bf16)
    assert loss16 != loss32  # bf16 ran
    assert abs(loss16 - loss32) <= BF16_LOSS_RTOL * abs(loss32), (loss16, loss32)
    cosine = torch.nn.functional.cosine_similarity(g32, g16, dim=0)
    assert cosine >= BF16_GRAD_COSINE, float(cosine)


def test_cpu_bf16_without_native_support_stays_fp32(monkeypatch):
    from pera_mm.engine.optimizers import auto_amp_optim_wrapper as W

    monkeypatch.setattr(W, 'cpu_bf16_supported', lambda: False)
    net = _net()
    wrapper = AutoAmpOptimWrapper(
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), cpu_bf16=True
    )
    assert not wrapper.cpu_bf16
    with wrapper.optim_context(net):
        assert net(torch.randn(2, 6)).dtype == torch.float32
