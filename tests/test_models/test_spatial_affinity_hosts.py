"""The spatial-affinity component in I-JEPA and LatentMIM: sampling on the HR grid, weight-0
parity with the host alone (values and gradients), the added term, bad input."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from pera_mm.models.backbones.latent_mim_vit import gap_patchify
from pera_mm.models.selfsup.latent_mim import hr_gap_patches
from pera_mm.models.utils.cross_scale import hr_children
from pera_mm.structures import patchify
from pera_mm.utils.errors import PeraDataError

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def ijepa_cfg(**extra):
    return dict(
        type='IJEPA',
        backbone=dict(
            type='IJEPAViT',
            arch=TINY,
            img_size=56,
            patch_size=14,
            in_channels=4,
            drop_path_rate=0.1,
        ),
        neck=dict(type='IJEPAPredictor', embed_dims=32, num_layers=1),
        mask_sampler=dict(target_scale=(0.2, 0.3), min_keep=1),
        **extra,
    )


def latent_mim_cfg(**extra):
    return dict(
        type='LatentMIM',
        backbone=dict(
            type='LatentMIMViT',
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            in_channels=4,
            patch_size=16,
            drop_path_rate=0.1,
            projector=dict(mlp_dim=64, mlp_depth=3),
        ),
        neck=dict(type='LatentMIMDecoder', embed_dims=16, num_layers=1, num_heads=2),
        loss=dict(type='PatchInfoNCELoss', tau=0.2),
        sim_loss=dict(type='SimilarityTargetLoss', loss_weight=0.1),
        patch_gap=4,
        num_visible=3,
        **extra,
    )


def _pair(B, mr_px, seed=0):
    """A random HR batch and its MR = area-downsampled x2 (the pair relation)."""
    hr = torch.randn(B, 4, 2 * mr_px, 2 * mr_px, generator=torch.Generator().manual_seed(seed))
    return F.avg_pool2d(hr, 2), hr


def _assert_same_step(a, b, host_key_map, model_a, model_b):
    for ka, kb in host_key_map.items():
        assert torch.equal(a[ka], b[kb]), (ka, kb)
    sum(v for k, v in a.items() if 'loss' in k).backward()
    sum(v for k, v in b.items() if 'loss' in k).backward()
    grads = dict(model_b.named_parameters())
    checked = 0
    for name, p in model_a.named_parameters():
        q = grads[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name
            checked += 1
    assert checked > 10


# --------------------------------------------------------------------------- I-JEPA


def test_ijepa_weight_zero_equals_the_host_alone():
    host = _build(ijepa_cfg())
    with_sa = _build(ijepa_cfg(spatial_affinity=dict(loss_weight=0.0)))
    sd = with_sa.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in host.state_dict().items())
    mr, hr = _pair(2, 56)
    torch.manual_seed(1)  # drop path
    a = host.loss([mr], [])
    torch.manual_seed(1)
    b = with_sa.loss([mr, hr], [])
    assert set(b) == {'loss_ijepa', 'monitor_sa_gram'} and b['monitor_sa_gram'] > 0
    _assert_same_step(a, b, {'loss': 'loss_ijepa'}, host, with_sa)


def test_ijepa_component_reads_the_context_patches():
    model = _build(ijepa_cfg(spatial_affinity=dict(loss_weight=2.0))).eval()  # no drop path
    mr, hr = _pair(2, 56)
    seen = {}
    sa = model.spatial_affinity
    original = sa.forward

    def spy(feats, idx, grid, hr_images, encode):
        seen.update(feats=feats, idx=idx, grid=grid)
        return original(feats, idx, grid, hr_images, encode)

    sa.forward = spy
    context_idx, target_idx = model.mask_sampler(2)
    model.mask_sampler.calls.sub_(1)  # replay the same draw inside loss()
    out = model.loss([mr, hr], [])
    assert torch.equal(seen['idx'], context_idx[0]) and seen['grid'] == (4, 4)
    # the context encoder's own outputs at those patches (before the predictor)
    with torch.no_grad():
        want = model.backbone.forward_tokens(mr, keep_idx=context_idx[0])
    assert torch.allclose(seen['feats'], want, atol=1e-5)
    assert out['loss_spatial_affinity'].item() == pytest.approx(2 * out['monitor_sa_gram'].item())
    out['loss_spatial_affinity'].backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.spatial_affinity.hr_teacher.parameters())
    assert model.neck.embed.weight.grad is None  # not through the predictor


def test_ijepa_component_bad_input():
    model = _build(ijepa_cfg(spatial_affinity=dict()))
    mr, hr = _pair(2, 56)
    with pytest.raises(PeraDataError, match='no HR images'):
        model.loss([mr], [])
    with pytest.raises(PeraDataError, match='HR image is 111x112 px but must be scale'):
        model.loss([mr, hr[..., :111, :]], [])


# ------------------------------------------------------------------------ LatentMIM


def test_hr_gap_patches_cover_the_ground_of_each_mr_window():
    """MR window (u, v) at offset (r, c) == the area-mean of HR patches (2u+i, 2v+j)."""
    torch.manual_seed(0)
    P, gap, s = 4, 2, 2  # 6 px MR cells, 12 px HR cells
    mr, hr = _pair(2, 18)  # 3 x 3 cells
    rows = torch.randint(0, gap, (2, 3, 3))
    cols = torch.randint(0, gap, (2, 3, 3))
    mr_win = gap_patchify(mr, P, gap, rows, cols)  # (2, 9, P*P*4), (p, q, c) order
    hr_patches, hr_grid = hr_gap_patches(hr, P, gap, s, rows, cols)
    assert hr_grid == (6, 6) and hr_patches.shape == (2, 36, P * P * 4)
    # every HR patch is the P x P pixel block at (u*12 + 2r + i*P, v*12 + 2c + j*P)
    b, u, v, i, j = 1, 2, 1, 1, 0
    y = u * 12 + 2 * rows[b, u, v] + i * P
    x = v * 12 + 2 * cols[b, u, v] + j * P
    block = hr[b, :, y : y + P, x : x + P].permute(1, 2, 0).reshape(-1)
    assert torch.equal(hr_patches[b, (2 * u + i) * 6 + (2 * v + j)], block)
    # the 2 x 2 HR patches of a cell, reassembled and area-downsampled, are the MR window
    fmap = hr_patches.view(2, 6, 6, P, P, 4).permute(0, 5, 1, 3, 2, 4).reshape(2, 4, 24, 24)
    down = patchify(F.avg_pool2d(fmap, 2), P)  # (2, 36 / 4 = 9, P*P*4) on the 3 x 3 grid
    assert torch.allclose(down, mr_win, atol=1e-6)


def _draws(model, mr, seed=0):
    torch.manual_seed(seed)
    return model.draw(mr.shape[0], model.grid_of(mr), mr.device)


def test_latent_mim_weight_zero_equals_the_host_alone():
    host = _build(latent_mim_cfg())
    with_sa = _build(latent_mim_cfg(spatial_affinity=dict(loss_weight=0.0)))
    sd = with_sa.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in host.state_dict().items())
    mr, hr = _pair(2, 80)
    draws = _draws(host, mr)
    torch.manual_seed(1)
    a = host.loss_with_draws(mr, draws)
    torch.manual_seed(1)
    b = with_sa.loss_with_draws(mr, draws, hr)
    assert set(b) == set(a) | {'monitor_sa_gram'}
    _assert_same_step(a, b, {k: k for k in a}, host, with_sa)
    # the EMA of the host's target ran identically inside both forwards
    t = dict(with_sa.target.named_parameters())
    assert all(torch.equal(p, t[n]) for n, p in host.target.named_parameters())


def test_latent_mim_component_reads_the_visible_patches_before_the_head():
    model = _build(latent_mim_cfg(spatial_affinity=dict(loss_weight=1.0, downsample='avg')))
    model.eval()  # no drop path: the features can be recomputed
    mr, hr = _pair(2, 80)
    draws = _draws(model, mr)
    out = model.loss_with_draws(mr, draws, hr)
    vis = torch.argsort(draws['noise'], dim=1)[:, :3]
    with torch.no_grad():
        pix = gap_patchify(mr, 16, 4, draws['gap_offset_row'], draws['gap_offset_col'])
        pix = torch.gather(pix, 1, vis[..., None].expand(-1, -1, pix.shape[-1]))
        feats = model.backbone.forward_patches(pix, vis, (4, 4), with_head=False)[:, 1:]
        hr_pix, hr_grid = hr_gap_patches(
            hr, 16, 4, 2, draws['gap_offset_row'], draws['gap_offset_col']
        )
        ids = torch.arange(64).expand(2, -1)
        hr_tok = model.spatial_affinity.hr_teacher.forward_patches(
            hr_pix, ids, hr_grid, with_head=False
        )[:, 1:]
        kids = hr_children(vis, (4, 4), 2)
        target = (
            torch.gather(hr_tok, 1, kids.flatten(1)[..., None].expand(-1, -1, 32))
            .view(2, 3, 4, 32)
            .mean(2)
        )
        zs, zt = F.normalize(feats, dim=-1), F.normalize(target, dim=-1)
        want = ((zs @ zs.transpose(1, 2) - zt @ zt.transpose(1, 2)) ** 2).mean()
    assert out['loss_spatial_affinity'].item() == pytest.approx(want.item(), rel=1e-5)
    with pytest.raises(PeraDataError, match='no HR images'):
        model.loss_with_draws(mr, draws)
