# Copyright (c) pera-mm contributors. All rights reserved.
"""A skipped non-finite I-JEPA step moves neither the encoders nor the optimizer state.

I-JEPA's EMA runs after the optimizer step (``LinearTeacherEMAHook``), which reads
``last_step_skipped``. Real AID tiles (56 px centre crops), the RGB CPU smoke model and
its ``AutoAmpOptimWrapper``, driven as the Runner drives them.
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

from pera_mm.engine.hooks import LinearTeacherEMAHook
from pera_mm.testing import REPO_ROOT

SMOKE = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'
CLASSES = ('Airport', 'Beach', 'Forest', 'Port', 'River', 'Viaduct')
NAN = float('nan')


def aid_batch(root, index, size=56):
    """Two AID tiles as a collated Runner batch (float (2, 3, size, size) centre crops)."""
    images = []
    for cls in CLASSES[2 * index : 2 * index + 2]:
        img = np.asarray(Image.open(root / f'AID/{cls}/{cls.lower()}_1.jpg').convert('RGB'))
        top = (img.shape[0] - size) // 2
        crop = img[top : top + size, top : top + size].transpose(2, 0, 1)
        images.append(torch.from_numpy(np.ascontiguousarray(crop)).float())
    return dict(inputs=torch.stack(images), data_samples=None)


class IJEPARun:
    """Smoke model, its wrapper (AdamW + the config's groups) and the EMA hook."""

    def __init__(self):
        cfg = Config.fromfile(str(SMOKE))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            torch.manual_seed(0)
            self.model = MODELS.build(cfg.model)
            self.model.init_weights()
            self.wrapper = build_optim_wrapper(self.model, cfg.optim_wrapper.to_dict())
        self.hook = LinearTeacherEMAHook(momentum=0.9, end_momentum=1.0)
        self.runner = SimpleNamespace(
            model=self.model,
            optim_wrapper=self.wrapper,
            iter=0,
            max_iters=10,
            message_hub=MessageHub.get_current_instance(),
        )

    def step(self, batch):
        self.model.train_step(copy.deepcopy(batch), self.wrapper)
        self.hook.after_train_iter(self.runner, self.runner.iter)
        self.runner.iter += 1

    def idle(self):
        """An iteration whose batch is dropped: its masks are drawn, nothing is trained."""
        self.model.mask_sampler(2)
        self.runner.iter += 1

    def snapshot(self):
        opt = self.wrapper.optimizer
        return dict(
            model={k: v.clone() for k, v in self.model.state_dict().items()},
            state=[
                {k: torch.as_tensor(v).clone() for k, v in opt.state[p].items()}
                for g in opt.param_groups
                for p in g['params']
            ],
        )


def assert_same(a, b, skip=()):
    assert a['model'].keys() == b['model'].keys()
    for name in a['model']:
        if name not in skip:
            assert torch.equal(a['model'][name], b['model'][name]), name
    for i, (s, t) in enumerate(zip(a['state'], b['state'])):
        assert s.keys() == t.keys(), f'state {i}'
        for k in s:
            assert torch.equal(s[k], t[k]), f'state {i} {k}'


@pytest.fixture(scope='module')
def batches(shared_path):
    root = shared_path('AID_150px')
    return [aid_batch(root, i) for i in range(3)]


@pytest.mark.needs_shared
def test_skipped_step_leaves_encoders_target_and_state_bitwise_unchanged(batches):
    ref = IJEPARun()
    ref.step(batches[0])
    ref.idle()
    ref.step(batches[2])
    expected = ref.snapshot()

    run = IJEPARun()
    run.step(batches[0])
    before = run.snapshot()
    bad = copy.deepcopy(batches[1])
    bad['inputs'][0, :, 20, 30] = NAN
    run.step(bad)
    assert run.wrapper.last_step_skipped and run.wrapper.nonfinite_skips == 1
    counter = [k for k in before['model'] if k.startswith('mask_sampler.')]
    assert_same(run.snapshot(), before, skip=counter)  # only the masks' call counter moved
    run.step(batches[2])
    assert not run.wrapper.last_step_skipped
    assert_same(run.snapshot(), expected)
    w = 'blocks.0.attn.qkv.weight'
    target, online = expected['model']['target_encoder.' + w], expected['model']['backbone.' + w]
    assert not torch.equal(target, before['model']['target_encoder.' + w])  # the EMA ran
    assert not torch.equal(online, target)
