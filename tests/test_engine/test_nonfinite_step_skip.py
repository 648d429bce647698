# Copyright (c) pera-mm contributors. All rights reserved.
"""A step with a non-finite loss or gradient never reaches the weights."""

import copy
import io
import os
import random
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.runner import Runner
from torch import nn

from pera_mm.engine.hooks import CenterUpdateHook, TeacherEMAHook
from pera_mm.engine.optimizers import AutoAmpOptimWrapper
from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch
from pera_mm.utils.errors import PeraConfigError, PeraTrainingStopped

REPO = REPO_ROOT
DEMO = REPO / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'
NAN = float('nan')


class TinyRun:
    """A small PerA model from the demo config, its AdamW wrapper and the two
    hooks that update state after a step, driven like the Runner drives them."""

    def __init__(self):
        self.model, self.transforms = build_small_model(DEMO, prototypes=64, seed=0)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.wrapper = AutoAmpOptimWrapper(
            optimizer=torch.optim.AdamW(params, lr=1e-2, weight_decay=0.04),
            clip_grad=dict(max_norm=3.0),
        )
        self.hooks = [TeacherEMAHook(momentum=0.9, end_momentum=1.0), CenterUpdateHook()]
        self.runner = SimpleNamespace(
            model=self.model,
            optim_wrapper=self.wrapper,
            iter=0,
            max_iters=10,
            message_hub=MessageHub.get_current_instance(),
        )

    def step(self, batch):
        """One training iteration: train_step, then the hooks, then iter += 1."""
        torch.manual_seed(100 + self.runner.iter)
        self.model.train_step(copy.deepcopy(batch), self.wrapper)
        for hook in self.hooks:
            hook.after_train_iter(self.runner, self.runner.iter)
        self.runner.iter += 1

    def idle(self):
        """An iteration in which nothing is trained (the reference for a skip)."""
        self.runner.iter += 1

    def snapshot(self):
        """Student, teacher, centre and AdamW state, cloned."""
        opt = self.wrapper.optimizer
        return dict(
            student={k: v.clone() for k, v in self.model.backbone.state_dict().items()},
            teacher={k: v.clone() for k, v in self.model.teacher.state_dict().items()},
            center=self.model.cls_loss.center.clone(),
            state=[
                {k: torch.as_tensor(v).clone() for k, v in opt.state[p].items()}
                for g in opt.param_groups
                for p in g['params']
            ],
            params=[p.detach().clone() for g in opt.param_groups for p in g['params']],
        )


def assert_same(a, b):
    """Bitwise equality of two snapshots."""
    for key in ('student', 'teacher'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name}'
    assert torch.equal(a['center'], b['center'])
    for i, (p, q) in enumerate(zip(a['params'], b['params'])):
        assert torch.equal(p, q), f'param {i}'
    for i, (s, t) in enumerate(zip(a['state'], b['state'])):
        assert s.keys() == t.keys(), f'state {i}'
        for k in s:
            assert torch.equal(s[k], t[k]), f'state {i} {k}'


@pytest.fixture(scope='module')
def batches():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    _, transforms = build_small_model(DEMO, prototypes=64, seed=0)
    return [synthetic_batch(transforms, 2, 96, seed=s) for s in range(3)]


@pytest.fixture(scope='module')
def reference(batches):
    """Trained on batch 0, an idle iteration, then batch 2."""
    run = TinyRun()
    run.step(batches[0])
    run.idle()
    run.step(batches[2])
    return run.snapshot()


def nan_pixels(batch):
    """Batch 1 with one NaN pixel in every view of its first sample."""
    bad = copy.deepcopy(batch)
    bad['inputs'] = [v.float() for v in bad['inputs']]
    for view in bad['inputs']:
        view[0, :, 3, 5] = NAN
    return bad


@pytest.mark.parametrize('inject', ['input', 'gradient'])
def test_nonfinite_step_changes_nothing(batches, reference, inject):
    run = TinyRun()
    run.step(batches[0])
    before = run.snapshot()
    assert before['center'].abs().sum() > 0  # the centre did move on the good step
    step_count = run.wrapper.optimizer.state[before_param(run)]['step'].clone()
    if inject == 'input':
        bad = nan_pixels(batches[1])
    else:
        bad = batches[1]
        weight = run.model.backbone.patch_embed.proj.weight
        handle = weight.register_hook(lambda g: torch.full_like(g, NAN))
    run.step(bad)
    if inject == 'gradient':
        handle.remove()
    w = run.wrapper
    assert w.last_step_skipped is True
    assert (w.nonfinite_skips, w.consecutive_nonfinite) == (1, 1)
    assert run.runner.message_hub.get_scalar('train/nonfinite_skips').current() == 1
    assert_same(run.snapshot(), before)
    assert torch.equal(w.optimizer.state[before_param(run)]['step'], step_count)
    assert all(p.grad is None or not p.grad.any() for p in run.model.parameters())
    # the model's pending centre sums were dropped: the next step equals a run
    # that never saw the bad batch
    run.step(batches[2])
    assert w.last_step_skipped is False
    assert (w.nonfinite_skips, w.consecutive_nonfinite) == (1, 0)
    assert_same(run.snapshot(), reference)


def before_param(run):
    return run.wrapper.optimizer.param_groups[0]['params'][0]


# ----------------------------------------------------------- small wrappers
def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def _wrapper(model, **kwargs):
    return AutoAmpOptimWrapper(
        optimizer=torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5), **kwargs
    )


def _update(wrapper, model, bad=False):
    x = torch.ones(4, 3)
    if bad:
        x[1, 2] = float('inf')
    wrapper.update_params(model(x).pow(2).mean())


def test_consecutive_skips_stop_training_with_one_line():
    model = _linear()
    wrapper = _wrapper(model, max_consecutive_nonfinite=3)
    _update(wrapper, model)
    _update(wrapper, model, bad=True)
    _update(wrapper, model, bad=True)
    _update(wrapper, model)  # a good step resets the run of skips
    assert wrapper.consecutive_nonfinite == 0 and wrapper.nonfinite_skips == 2
    good = [p.detach().clone() for p in model.parameters()]
    _update(wrapper, model, bad=True)
    _update(wrapper, model, bad=True)
    with pytest.raises(PeraTrainingStopped) as info:
        _update(wrapper, model, bad=True)
    message = str(info.value)
    assert '\n' not in message
    assert '3 consecutive steps' in message and 'max_consecutive_nonfinite=3' in message
    assert wrapper.nonfinite_skips == 5
    for p, q in zip(model.parameters(), good):
        assert torch.equal(p, q)


def test_never_stops_when_disabled_and_plain_steps_when_off():
    model = _linear()
    wrapper = _wrapper(model, max_consecutive_nonfinite=None)
    for _ in range(30):
        _update(wrapper, model, bad=True)
    assert wrapper.nonfinite_skips == 30
    # skip_nonfinite=False: the old behaviour, the NaN goes into the weights
    model = _linear()
    wrapper = _wrapper(model, skip_nonfinite=False)
    _update(wrapper, model, bad=True)
    assert not torch.isfinite(model.weight).all()
    assert wrapper.nonfinite_skips == 0
    with pytest.raises(PeraConfigError, match='max_consecutive_nonfinite'):
        _wrapper(model, max_consecutive_nonfinite=-1)


def test_counter_round_trips_through_state_dict():
    model = _linear()
    wrapper = _wrapper(model)
    _update(wrapper, model)
    assert 'nonfinite_steps' not in wrapper.state_dict()  # healthy runs: state as before
    _update(wrapper, model, bad=True)
    _update(wrapper, model)
    _update(wrapper, model, bad=True)
    state = wrapper.state_dict()
    assert state['nonfinite_steps'] == dict(total=2, consecutive=1)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # checkpoints load with weights_only=True
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    other_model = copy.deepcopy(model)
    other = _wrapper(other_model)
    other.load_state_dict(loaded)
    assert (other.nonfinite_skips, other.consecutive_nonfinite) == (2, 1)
    assert other.optimizer.state_dict()['state'][0]['step'] == 2
    # an old checkpoint without counters loads as zero
    fresh = _wrapper(_linear())
    fresh.nonfinite_skips = 7
    fresh.load_state_dict(_wrapper(_linear()).state_dict())
    assert fresh.nonfinite_skips == 0


def test_amp_path_backs_off_the_loss_scale_and_counts(monkeypatch):
    """The GradScaler path (simulated with CPU's GradScaler): a non-finite
    step is skipped and counted by us, the scale backs off as GradScaler's
    would, and a finite step equals the fp32 step."""
    model, ref_model = _linear(), _linear()
    wrapper = _wrapper(model)
    ref = _wrapper(ref_model)
    wrapper.amp_enabled = True
    wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10, growth_interval=1)
    _update(wrapper, model, bad=True)
    assert wrapper.nonfinite_skips == 1 and wrapper.last_step_skipped
    assert wrapper.loss_scaler.get_scale() == 2.0**9
    assert wrapper.optimizer.state_dict()['state'] == {}
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)
    _update(wrapper, model)
    _update(ref, ref_model)
    assert wrapper.loss_scaler.get_scale() == 2.0**10  # grew after a good step
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q)


# -------------------------------------------------------------- 2 processes
def _ddp_worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    try:
        model = nn.parallel.DistributedDataParallel(_linear())
        wrapper = _wrapper(model.module)
        torch.manual_seed(rank)
        xs = [torch.randn(4, 3) for _ in range(3)]
        # step 1: rank 1 sees a NaN input (DDP averages it into rank 0's grads)
        if rank == 1:
            xs[1][0, 0] = NAN
        skipped = []
        for x in xs:
            wrapper.update_params(model(x).pow(2).mean())
            skipped.append(wrapper.last_step_skipped)
        # step 3: only rank 1's gradient turns NaN after DDP's all-reduce
        wrapper.last_step_skipped = False
        wrapper.backward(model(xs[0]).pow(2).mean())
        if rank == 1:
            model.module.weight.grad[0, 0] = NAN
        wrapper.step()
        wrapper.zero_grad()
        skipped.append(wrapper.last_step_skipped)
        torch.save(
            dict(
                skipped=skipped,
                total=wrapper.nonfinite_skips,
                params=[p.detach() for p in model.parameters()],
                step=wrapper.optimizer.state_dict()['state'][0]['step'],
            ),
            os.path.join(out_dir, f'rank{rank}.pt'),
        )
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_ranks_skip_together(tmp_path):
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    assert r0['skipped'] == r1['skipped'] == [False, True, False, True]
    assert r0['total'] == r1['total'] == 2
    assert r0['step'] == r1['step'] == 2
    for p, q in zip(r0['params'], r1['params']):
        assert torch.isfinite(p).all()
        assert torch.equal(p, q)


# ------------------------------------------------------------- with a Runner
class _NanGradsFrom(Hook):
    """From iteration ``start`` on, the linear weight's gradient is NaN."""

    def __init__(self, start):
        self.start, self.bad = start, False

    def before_train(self, runner):
        weight = runner.model.linear.weight
        weight.register_hook(lambda g: torch.full_like(g, NAN) if self.bad else g)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.bad = self.start is not None and runner.iter >= self.start


def _toy_runner(work_dir, max_iters, hook, **extra):
    cfg = Config.fromfile(str(REPO / 'tests/data/toy_runner_config.py'))
    cfg.merge_from_dict(
        dict(
            work_dir=str(work_dir),
            launcher='none',
            val_cfg=None,
            val_dataloader=None,
            val_evaluator=None,
            train_cfg=dict(max_iters=max_iters, val_interval=1000),
            optim_wrapper=dict(
                type='AutoAmpOptimWrapper',
                max_consecutive_nonfinite=2,
                optimizer=dict(_delete_=True, type='AdamW', lr=0.1),
            ),
            default_hooks=dict(checkpoint=dict(interval=1, save_best=None)),
            **extra,
        )
    )
    runner = Runner.from_cfg(cfg)
    runner.register_hook(hook)
    return runner


def test_runner_stops_and_keeps_the_last_good_checkpoint_then_resumes(tmp_path):
    runner = _toy_runner(tmp_path, 10, _NanGradsFrom(3))
    with pytest.raises(PeraTrainingStopped, match='2 consecutive steps'):
        runner.train()
    ckpts = sorted(p.name for p in tmp_path.glob('iter_*.pth'))
    assert ckpts == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth', 'iter_4.pth']
    good = torch.load(tmp_path / 'iter_3.pth', weights_only=True)
    after_skip = torch.load(tmp_path / 'iter_4.pth', weights_only=True)
    for k, v in good['state_dict'].items():
        assert torch.equal(v, after_skip['state_dict'][k]), k
    assert torch.equal(
        good['optimizer']['state'][0]['exp_avg'], after_skip['optimizer']['state'][0]['exp_avg']
    )
    assert after_skip['optimizer']['nonfinite_steps'] == dict(total=1, consecutive=1)
    # resuming from it brings the counters back; a good step resets the run
    resumed = _toy_runner(
        tmp_path / 'resumed',
        6,
        _NanGradsFrom(None),
        resume=True,
        load_from=str(tmp_path / 'iter_4.pth'),
    )
    resumed.train()
    assert resumed.optim_wrapper.nonfinite_skips == 1
    assert resumed.optim_wrapper.consecutive_nonfinite == 0
