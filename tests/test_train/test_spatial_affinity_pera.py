"""PerA with and without the spatial-affinity component: a few steps on real 4-band pixels.

Real Sentinel-2 pixels, SIMULATED scale: the HR crops are OSCD 10 m B2/B3/B4/B8 windows and
the MR crops are those windows area-downsampled x2 (``pera_mm.testing.oscd_pairs``). No
paired multi-crop transform exists for PerA yet, so the views are cut here: one global
pair per sample (student = teacher view, as colour jitter is RGB-only), two 16 px local
pairs from the MR crop, and the HR crop of the global view.
"""

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from pera_mm.structures import MASK_L, MASK_S, MASK_T
from pera_mm.testing.oscd_pairs import area_downsample, oscd_stack

MEAN = np.array([0.1373, 0.1089, 0.0962, 0.1204], np.float32)
STD = np.array([0.0184, 0.0225, 0.0301, 0.0512], np.float32)


def _pairs(stack, n, hr=64, seed=0):
    """``n`` (MR 32 px, HR 64 px) normalised pairs cut at random places of one stack."""
    rng = np.random.default_rng(seed)
    mrs, hrs = [], []
    for _ in range(n):
        y, x = (int(rng.integers(0, s - hr)) for s in stack.shape[:2])
        win = stack[y : y + hr, x : x + hr].astype(np.float32)
        for arr, out in ((win, hrs), (area_downsample(win, 2), mrs)):
            norm = (arr / 10000 - MEAN) / STD
            out.append(torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1))))
    return torch.stack(mrs), torch.stack(hrs)


def _model(spatial_affinity=None):
    vit = dict(
        type='PerAViT',
        arch=dict(embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96),
        img_size=32,
        patch_size=8,
        in_channels=4,
        drop_path_rate=0.0,
    )
    cfg = dict(
        type='PerA',
        backbone=vit,
        projector=dict(
            type='PerADINOHead', out_channels=128, hidden_channels=64, bottleneck_channels=32
        ),
        predictor=dict(type='PixelPredictionHead', hidden_channels=64, bottleneck_channels=32),
        cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9),
        pixel_loss=dict(type='PixelMSELoss', loss_weight=0.01, reduction='patch_sum'),
        koleo_loss=dict(type='KoLeoLoss', loss_weight=0.1),
        spatial_affinity=spatial_affinity,
    )
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def _masks(n, L, gen, n_s, n_l):
    rows = []
    for _ in range(n):
        perm = torch.randperm(L, generator=gen)
        m = torch.full((L,), MASK_T)
        m[perm[:n_s]], m[perm[n_s : n_s + n_l]] = MASK_S, MASK_L
        rows.append(m)
    return torch.stack(rows)


def _train(model, mr, hr, steps=8):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    B = mr.shape[0]
    loc = torch.cat([mr[..., :16, :16], mr[..., 16:, 16:]])  # 2 local crops, crop-major
    totals, grams = [], []
    for _ in range(steps):
        out = model.loss_from_views(
            mr,
            mr,
            loc,
            loc,
            _masks(B, 16, gen, 4, 4),
            _masks(2 * B, 4, gen, 2, 0),
            B,
            **(dict(hr_glob=hr) if model.spatial_affinity is not None else {}),
        )
        total = sum(v for k, v in out.items() if 'loss' in k)
        opt.zero_grad()
        total.backward()
        opt.step()
        model.update_teacher(0.99)
        if model.spatial_affinity is not None:
            model.spatial_affinity.ema_update(model.backbone, 0.9)
            grams.append(out['monitor_sa_gram'].item())
        totals.append(total.item())
    return totals, grams


@pytest.mark.needs_shared
def test_pera_trains_with_and_without_the_component_on_real_pixels(shared_path):
    stack, _, _ = oscd_stack(shared_path('OSCD'), 'paris')
    mr, hr = _pairs(stack, 4)
    host, _ = _train(_model(), mr, hr)
    totals, grams = _train(_model(dict(loss_weight=1.0, downsample='bilinear')), mr, hr)
    for run in (host, totals):
        assert all(np.isfinite(run))
        assert np.mean(run[-3:]) < np.mean(run[:3])  # falling
    # the gram term is in the total (the masks move between steps, so it is noisy)
    assert all(np.isfinite(grams)) and min(grams) > 0
    assert totals[0] == pytest.approx(host[0] + grams[0], rel=1e-5)
