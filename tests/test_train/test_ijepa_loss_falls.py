# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA learns on real images: the smooth-L1 loss of the CPU smoke model falls over
30 iterations on random crops of the unlabeled AID tiles (fresh masks every step, the
EMA after every step)."""

import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from PIL import Image

from pera_mm.testing import REPO_ROOT

SMOKE = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'
SIZE, BATCH, ITERS = 56, 8, 30


@pytest.mark.needs_shared
def test_loss_falls_over_30_iterations(shared_path):
    files = sorted(shared_path('AID_unlabeled/images').glob('*.jpg'))[:64]
    tiles = [np.asarray(Image.open(f).convert('RGB')) for f in files]
    cfg = Config.fromfile(SMOKE)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper.to_dict())  # lr 1e-3
    history = []
    for _ in range(ITERS):
        crops = []
        for i in rng.choice(len(tiles), BATCH, replace=False):
            top, left = rng.integers(0, tiles[i].shape[0] - SIZE, 2)
            crop = tiles[i][top : top + SIZE, left : left + SIZE].transpose(2, 0, 1)
            crops.append(torch.from_numpy(np.ascontiguousarray(crop)).float())
        log = model.train_step(dict(inputs=torch.stack(crops), data_samples=None), wrapper)
        model.update_teacher(0.996)
        assert math.isfinite(float(log['loss'].detach()))
        history.append(float(log['loss'].detach()))
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.8 * first, (first, last, history)
