# Copyright (c) pera-mm contributors. All rights reserved.
"""A skipped non-finite LatentMIM step moves nothing, although its EMA ran in the forward.

Real AID tiles (80 px centre crops, 4 x 4 cells of 16 + 4 px), the CPU smoke model, its
``AutoAmpOptimWrapper`` and ``LatentMIMScheduleHook``, driven as the Runner drives them.
"""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from PIL import Image

from pera_mm.engine.hooks import LatentMIMScheduleHook
from pera_mm.testing import REPO_ROOT

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'
CLASSES = ('Airport', 'Beach', 'Forest', 'Port', 'River', 'Viaduct')
NAN = float('nan')


def aid_batch(root, index, size=80):
    """Two AID tiles as a collated Runner batch (uint8 (2, 3, size, size) centre crops)."""
    images = []
    for cls in CLASSES[2 * index : 2 * index + 2]:
        img = np.asarray(Image.open(root / f'AID/{cls}/{cls.lower()}_1.jpg').convert('RGB'))
        top = (img.shape[0] - size) // 2
        crop = img[top : top + size, top : top + size]
        images.append(torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))))
    return dict(inputs=torch.stack(images), data_samples=None)


class LatentMIMRun:
    """The smoke model, its wrapper and the schedule hook; ``step`` is one Runner iteration."""

    def __init__(self, accumulation=1):
        cfg = Config.fromfile(str(SMOKE))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            torch.manual_seed(0)
            self.model = MODELS.build(cfg.model)
            self.model.init_weights()
            wrapper_cfg = cfg.optim_wrapper.to_dict()
            wrapper_cfg.update(accumulative_counts=accumulation)
            self.wrapper = build_optim_wrapper(self.model, wrapper_cfg)
        self.hook = LatentMIMScheduleHook()
        self.runner = SimpleNamespace(
            model=self.model,
            optim_wrapper=self.wrapper,
            iter=0,
            max_iters=10,
            message_hub=MessageHub.get_current_instance(),
        )

    def step(self, batch):
        self.hook.before_train_iter(self.runner, self.runner.iter)
        torch.manual_seed(100 + self.runner.iter)  # the draws of this iteration
        self.model.train_step(copy.deepcopy(batch), self.wrapper)
        self.hook.after_train_iter(self.runner, self.runner.iter)
        self.runner.iter += 1

    def idle(self):
        self.runner.iter += 1

    def snapshot(self):
        opt = self.wrapper.optimizer
        return dict(
            online={k: v.clone() for k, v in self.model.backbone.state_dict().items()},
            neck={k: v.clone() for k, v in self.model.neck.state_dict().items()},
            target={k: v.clone() for k, v in self.model.target.state_dict().items()},
            state=[
                {k: torch.as_tensor(v).clone() for k, v in opt.state[p].items()}
                for g in opt.param_groups
                for p in g['params']
            ],
        )


def started(accumulation):
    """A run whose target sits away from the encoder, so that the EMA shows."""
    run = LatentMIMRun(accumulation)
    with torch.no_grad():
        for p in run.model.target.parameters():
            p.add_(0.01)
    return run


def assert_same(a, b):
    for part in ('online', 'neck', 'target'):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f'{part}.{name}'
    assert len(a['state']) == len(b['state'])
    for i, (s, t) in enumerate(zip(a['state'], b['state'])):
        assert s.keys() == t.keys(), f'state {i}'
        for k in s:
            assert torch.equal(s[k], t[k]), f'state {i} {k}'


def with_nan(batch):
    bad = copy.deepcopy(batch)
    bad['inputs'] = bad['inputs'].float()
    bad['inputs'][0, :, 10, 10] = NAN
    return bad


@pytest.fixture(scope='module')
def batches(shared_path):
    root = shared_path('AID_150px')
    return [aid_batch(root, i) for i in range(3)]


@pytest.mark.needs_shared
def test_skipped_step_leaves_target_params_and_state_bitwise_unchanged(batches):
    ref = LatentMIMRun()
    ref.step(batches[0])
    ref.idle()
    ref.step(batches[2])
    expected = ref.snapshot()

    run = LatentMIMRun()
    run.step(batches[0])
    before = run.snapshot()
    # the EMA does run in the bad step's forward: without the rollback the target moves
    moved = copy.deepcopy(run.model)
    moved.update_target(run.hook.values_at(1, 10)[0])
    name = 'blocks.0.attn.qkv.weight'
    assert not torch.equal(moved.target.state_dict()[name], before['target'][name])

    run.step(with_nan(batches[1]))
    assert run.wrapper.last_step_skipped and run.wrapper.nonfinite_skips == 1
    assert_same(run.snapshot(), before)
    assert not run.model._snapshot_pending
    run.step(batches[2])
    assert not run.wrapper.last_step_skipped
    assert_same(run.snapshot(), expected)
    # and training did move the target away from its initial copy of the encoder
    assert not torch.equal(expected['target'][name], expected['online'][name])


@pytest.mark.needs_shared
def test_skip_at_the_end_of_an_accumulation_window_undoes_the_window_ema(batches):
    run = started(2)
    before = run.snapshot()
    run.step(batches[0])  # first of the window: EMA in the forward, no optimizer step yet
    assert run.model._snapshot_pending and not run.wrapper.last_step_skipped
    moved = run.snapshot()['target']
    assert any(not torch.equal(v, before['target'][k]) for k, v in moved.items())
    run.step(with_nan(batches[1]))  # the window's step is skipped: its EMA is undone
    assert run.wrapper.last_step_skipped
    assert_same(run.snapshot(), before)

    ok = started(2)
    ok.step(batches[0])
    ok.step(batches[1])
    assert not ok.model._snapshot_pending and not ok.wrapper.last_step_skipped
    for k, v in ok.snapshot()['target'].items():
        assert torch.equal(v, moved[k]), k  # applied step: the window's EMA is kept


@pytest.mark.needs_shared
def test_a_checkpoint_inside_an_accumulation_window_carries_the_snapshot(batches):
    """Resumed mid-window, a skipped step still undoes the window's EMA."""

    run = started(2)
    before = run.snapshot()
    run.step(batches[0])  # the window is open: the target has moved by its EMA
    checkpoint = dict(state_dict=copy.deepcopy(run.model.state_dict()))
    run.hook.before_save_checkpoint(run.runner, checkpoint)
    assert LatentMIMScheduleHook.CHECKPOINT_KEY in checkpoint

    resumed = started(2)
    resumed.model.load_state_dict(checkpoint['state_dict'])
    resumed.wrapper.load_state_dict(run.wrapper.state_dict())
    resumed.hook.after_load_checkpoint(resumed.runner, checkpoint)
    resumed.runner.iter = 1
    resumed.wrapper.initialize_count_status(resumed.model, 1, 10)  # as the Runner resumes
    resumed.step(with_nan(batches[1]))  # the window's step is skipped after the resume
    assert resumed.wrapper.last_step_skipped
    target = resumed.snapshot()['target']
    for k, v in before['target'].items():
        assert torch.equal(target[k], v), k

    # between windows nothing is saved, and loading such a checkpoint closes no window
    closed = dict()
    resumed.hook.before_save_checkpoint(resumed.runner, closed)
    assert closed == {}
    resumed.hook.after_load_checkpoint(resumed.runner, closed)
    assert not resumed.model._snapshot_pending


def test_a_snapshot_of_another_model_is_a_one_line_error():
    from pera_mm.utils.errors import PeraConfigError

    run = LatentMIMRun()
    with pytest.raises(PeraConfigError, match='target snapshot holds 1 tensors'):
        run.model.restore_target_snapshot([torch.zeros(3)])
