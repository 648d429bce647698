# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM learns on real images: the patch InfoNCE of the CPU smoke model falls over
30 iterations on random crops of the unlabeled AID tiles (fresh draws every step)."""

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

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'
SIZE, BATCH, ITERS = 80, 8, 30


@pytest.mark.needs_shared
def test_infonce_falls_over_30_iterations(shared_path):
    files = sorted(shared_path('AID_unlabeled/images').glob('*.jpg'))[:64]
    tiles = [np.asarray(Image.open(f).convert('RGB')) for f in files]
    cfg = Config.fromfile(SMOKE)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper_cfg = cfg.optim_wrapper.to_dict()
        wrapper_cfg['optimizer']['lr'] = 1e-3  # constant: no warm-up in 30 steps
        wrapper = build_optim_wrapper(model, wrapper_cfg)
    history = []
    for _ in range(ITERS):
        crops = []
        for i in rng.choice(len(tiles), BATCH, replace=False):
            top, left = rng.integers(0, tiles[i].shape[0] - SIZE, 2)
            crop = tiles[i][top : top + SIZE, left : left + SIZE].transpose(2, 0, 1)
            crops.append(torch.from_numpy(np.ascontiguousarray(crop)))
        log = model.train_step(dict(inputs=torch.stack(crops), data_samples=None), wrapper)
        assert math.isfinite(float(log['loss'].detach()))
        history.append(float(log['loss_infonce'].detach()))
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    # chance level: 2 tau * ln(number of targets) with 14 of 16 patches as targets
    chance = 2 * 0.2 * math.log(16 - model.num_visible)
    assert last < 0.97 * first and last < chance, (first, last, chance, history)
