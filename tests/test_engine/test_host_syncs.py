# Copyright (c) pera-mm contributors. All rights reserved.
"""Host syncs of the PerA step, counted with the profiler (``aten::_local_scalar_dense``).

On a CPU a sync costs little, on a GPU each one stalls the launch queue, so the
counts are checked here on a tiny model: the training hooks add none, and the
collapse statistics every N iterations take their syncs out of the other steps.
"""

from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import RuntimeInfoHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.profiler import ProfilerActivity, profile, record_function

from pera_mm.engine.hooks import CenterUpdateHook, CollapseMonitorHook, TeacherEMAHook
from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch

PERA = REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
SYNC_OP = 'aten::_local_scalar_dense'
HOOK_RANGE = 'test::hooks'
MONITOR_KEYS = (
    'monitor_cls_cosine',
    'monitor_cls_erank',
    'monitor_target_entropy',
    'monitor_target_batch_entropy',
)


def count_syncs(fn):
    """(syncs in total, syncs under the ``HOOK_RANGE`` ranges) of one call of ``fn``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    total = in_hooks = 0
    for ev in prof.events():
        if ev.name != SYNC_OP:
            continue
        total += 1
        parent = ev.cpu_parent
        while parent is not None and parent.name != HOOK_RANGE:
            parent = parent.cpu_parent
        in_hooks += parent is not None
    return total, in_hooks


class HookedPerA:
    """A tiny PerA with the shipped config's step hooks, run as the runner runs them."""

    def __init__(self, interval):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.model, transforms = build_small_model(PERA, prototypes=64)
            self.optim = build_optim_wrapper(
                self.model,
                dict(
                    type='AutoAmpOptimWrapper',
                    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04),
                    clip_grad=dict(max_norm=3.0),
                ),
            )
        self.batches = [synthetic_batch(transforms, 2, 80, seed=i) for i in range(5)]
        hub = MessageHub.get_instance(f'host-syncs-{interval}-{id(self)}')
        self.optim.message_hub = hub
        self.runner = SimpleNamespace(
            model=self.model,
            optim_wrapper=self.optim,
            message_hub=hub,
            iter=0,
            max_iters=10,
            logger=MMLogger.get_current_instance(),
        )
        self.ema, self.centre = TeacherEMAHook(), CenterUpdateHook()
        self.monitor = CollapseMonitorHook(interval=interval)
        self.monitor.before_train(self.runner)
        self.logging = RuntimeInfoHook()

    def step(self, own_hooks_only=False):
        """One iteration; with ``own_hooks_only`` MMEngine's logging stays outside the range."""
        r, data = self.runner, self.batches[self.runner.iter]
        with record_function(HOOK_RANGE):
            self.monitor.before_train_iter(r, r.iter, data)
        out = self.model.train_step(data, self.optim)
        with record_function(HOOK_RANGE):
            for hook in (self.ema, self.centre, self.monitor):
                hook.after_train_iter(r, r.iter, data, out)
        if not own_hooks_only:
            self.logging.after_train_iter(r, r.iter, data, out)
        r.iter += 1
        return out


@pytest.fixture(scope='module')
def counts():
    """Syncs per iteration (total, in the project's hooks) with interval 1 and 2."""
    torch.manual_seed(0)
    result = {}
    for interval in (1, 2):
        run = HookedPerA(interval)
        result[interval] = [count_syncs(run.step) for _ in range(4)]
        # the same hooks with logging left out of the count's range: none of their own
        result[f'{interval}-own'] = count_syncs(lambda run=run: run.step(own_hooks_only=True))
    return result


def test_ema_centre_and_monitor_hooks_do_not_sync(counts):
    for interval in (1, 2):
        assert all(in_hooks == 0 for _, in_hooks in counts[interval]), counts[interval]


def test_ema_and_centre_updates_do_not_sync():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model, transforms = build_small_model(PERA, prototypes=64)
    batch = synthetic_batch(transforms, 2, 80)
    data = model.data_preprocessor(batch, True)
    model.loss(data['inputs'], data['data_samples'])  # leaves pending centre sums
    teacher, student = model.ema_pairs()
    with torch.no_grad():
        for p in student:
            p.add_(1.0)  # the teacher is a copy of the student: move the student off it
    expected = [t.detach() + 0.1 * (s.detach() - t.detach()) for t, s in zip(teacher, student)]
    centre = model.cls_loss.center.clone()

    def updates():
        model.update_teacher(0.9)
        model.cls_loss.update_center()

    total, _ = count_syncs(updates)
    assert total == 0
    assert not torch.equal(model.cls_loss.center, centre)  # the centre update ran
    for t, e in zip(teacher, expected):
        torch.testing.assert_close(t, e, atol=1e-5, rtol=1e-5)


def test_monitor_interval_takes_the_statistics_syncs_out_of_other_steps(counts):
    every = [total for total, _ in counts[1]]
    other = [total for total, _ in counts[2]]
    assert len(set(every)) == 1  # the same every iteration
    # interval 2: iterations 1 and 3 are monitored and sync as before; 0 and 2 do not
    assert other[1] == other[3] == every[0]
    assert other[0] == other[2]
    # at least one sync per logged statistic (RuntimeInfoHook reads each with .item())
    assert every[0] - other[0] >= len(MONITOR_KEYS), (every, other)
