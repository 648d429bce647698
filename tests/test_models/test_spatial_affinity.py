"""The spatial-affinity component: correspondence, downsampling, HR teacher, hook, PerA wiring."""

from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from pera_mm.engine.hooks import SpatialAffinityHook
from pera_mm.models.utils.cross_scale import HRToMRDownsample, check_scale, hr_children
from pera_mm.structures import MASK_L, MASK_S, MASK_T
from pera_mm.utils.errors import PeraConfigError, PeraDataError

# ------------------------------------------------------------------ correspondence


def test_mr_patch_maps_to_exactly_hr_2u_plus_i_2v_plus_j():
    h, w, s = 3, 4, 2
    mr_idx = torch.arange(h * w)[None]
    children = hr_children(mr_idx, (h, w), s)[0]  # (12, 4)
    for k in range(h * w):
        u, v = divmod(k, w)
        want = [(2 * u + i) * (2 * w) + (2 * v + j) for i in range(2) for j in range(2)]
        assert children[k].tolist() == want
    # s = 3 on a 2 x 2 grid: MR (1, 0) -> HR rows 3..5, cols 0..2 of a 6 x 6 grid
    kids = hr_children(torch.tensor([[2]]), (2, 2), 3)[0, 0].tolist()
    assert kids == [r * 6 + c for r in (3, 4, 5) for c in (0, 1, 2)]
    check_scale((16, 16), (32, 32), 2)
    with pytest.raises(PeraDataError, match='HR image is 33x32 px but must be scale'):
        check_scale((16, 16), (33, 32), 2)


# ------------------------------------------------------------------- downsampling


def _hr_map():
    """A 1-channel 16 x 16 HR map (MR grid 8 x 8) that is 1 on HR column 7, else 0."""
    fmap = torch.zeros(1, 1, 16, 16)
    fmap[..., 7] = 1.0
    return fmap.flatten(2).transpose(1, 2)  # (1, 256, 1) raster tokens


@pytest.mark.parametrize(
    'mode, row',
    [
        # box of the MR cell: MR column 3 holds HR columns 6, 7 -> 1/2
        ('avg', [0, 0, 0, 0.5, 0, 0, 0, 0]),
        # antialiased triangle of half-width 2 HR patches: weights 1/8, 3/8, 3/8, 1/8 on
        # HR columns 2v-1 .. 2v+2; HR column 7 is the 3rd tap of MR col 3, the 1st of col 4
        ('bilinear', [0, 0, 0, 3 / 8, 1 / 8, 0, 0, 0]),
        # antialiased cubic (a = -0.5) of half-width 4: HR column 7 lies 1.25, 0.25, 0.75,
        # 1.75 MR cells from the centres of MR columns 2..5, weights k(x) / 2
        ('bicubic', [0, 0, -0.03515625, 0.43359375, 0.11328125, -0.01171875, 0, 0]),
    ],
)
def test_each_downsampling_mode_on_a_hand_built_map(mode, row):
    ds = HRToMRDownsample(mode, scale=2)
    out = ds(_hr_map(), (8, 8), torch.arange(64)[None])[0, :, 0].view(8, 8)
    assert torch.allclose(out, torch.tensor(row).expand(8, 8), atol=1e-6), out
    # the same map through a subset of positions: the gather picks the same values
    idx = torch.tensor([[3, 12, 60]])
    picked = ds(_hr_map(), (8, 8), idx)[0, :, 0]
    assert torch.allclose(picked, out.flatten()[idx[0]])


def test_bicubic_border_and_bilinear_border_weights_from_deltas():
    """Each MR value is a renormalised filter over the HR columns; the weights of MR column 0
    (at the border) and 1 (inside) recovered from unit deltas match the hand formula."""

    def cubic(x, a=-0.5):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    def tent(x):
        return max(0.0, 1 - abs(x))

    for mode, kernel, support in (('bilinear', tent, 1), ('bicubic', cubic, 2)):
        ds = HRToMRDownsample(mode, scale=2)
        for v in (0, 1):
            centre = 2 * v + 1.0  # MR cell centre in HR column units (align_corners=False)
            taps = {c: kernel((c + 0.5 - centre) / 2) for c in range(8)}
            total = sum(taps.values())
            for c in range(8):
                fmap = torch.zeros(1, 1, 8, 8)
                fmap[..., c] = 1.0
                got = ds(fmap.flatten(2).transpose(1, 2), (4, 4), torch.tensor([[v]]))
                assert got.item() == pytest.approx(taps[c] / total, abs=1e-6), (mode, v, c)
            assert len([c for c in taps if taps[c]]) <= 4 * support


def test_linear_mode_starts_as_average_and_learns():
    tokens = torch.randn(2, 64, 6)
    idx = torch.randint(0, 16, (2, 5))
    lin, avg = HRToMRDownsample('linear', 2, embed_dims=6), HRToMRDownsample('avg', 2)
    assert torch.allclose(lin(tokens, (4, 4), idx), avg(tokens, (4, 4), idx), atol=1e-6)
    lin(tokens, (4, 4), idx).sum().backward()
    assert lin.proj.weight.grad.abs().sum() > 0
    with pytest.raises(PeraConfigError, match="mode 'linear' needs embed_dims"):
        HRToMRDownsample('linear', 2)
    with pytest.raises(PeraConfigError, match='mode must be one of'):
        HRToMRDownsample('nearest', 2)
    with pytest.raises(PeraDataError, match='do not make the 8x8 grid'):
        avg(torch.randn(1, 60, 6), (4, 4), idx[:1])


# -------------------------------------------------------------------- component


def _vit(patch=8, img=32, bands=4):
    return dict(
        type='PerAViT',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=img,
        patch_size=patch,
        in_channels=bands,
        drop_path_rate=0.0,
    )


def _encode(encoder, images):
    return encoder(images, path='sparse', keep_idx=None)[:, 1:]


def _component(**kw):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(type='SpatialAffinity', encoder=_vit(), embed_dims=32, **kw))


def test_hr_teacher_gets_no_gradient_and_loss_is_weighted():
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(_vit())
    sa = _component(loss_weight=0.5)
    sa.sync(student)
    mr, hr = torch.randn(2, 4, 32, 32), torch.randn(2, 4, 64, 64)
    idx = torch.stack([torch.randperm(16)[:6] for _ in range(2)])
    feats = _encode(student, mr).gather(1, idx[..., None].expand(-1, -1, 32))
    out = sa(feats, idx, (4, 4), hr, _encode)
    assert out['loss_spatial_affinity'].item() == pytest.approx(0.5 * out['monitor_sa_gram'].item())
    out['loss_spatial_affinity'].backward()
    assert all(p.grad is None for p in sa.hr_teacher.parameters())
    assert student.patch_embed.proj.weight.grad.abs().sum() > 0
    # by hand: the HR teacher's dense tokens, bilinear-antialiased to 4 x 4, gathered
    with torch.no_grad():
        hr_tok = _encode(sa.hr_teacher, hr).transpose(1, 2).reshape(2, 32, 8, 8)
        low = torch.nn.functional.interpolate(hr_tok, size=(4, 4), mode='bilinear', antialias=True)
        target = low.flatten(2).transpose(1, 2).gather(1, idx[..., None].expand(-1, -1, 32))
        zs = torch.nn.functional.normalize(feats, dim=-1)
        zt = torch.nn.functional.normalize(target, dim=-1)
        want = ((zs @ zs.transpose(1, 2) - zt @ zt.transpose(1, 2)) ** 2).mean()
    assert out['monitor_sa_gram'].item() == pytest.approx(want.item(), rel=1e-5)
    # weight 0: logged only, without a graph
    sa.weight = 0.0
    out = sa(feats.detach().requires_grad_(), idx, (4, 4), hr, _encode)
    assert set(out) == {'monitor_sa_gram'} and not out['monitor_sa_gram'].requires_grad


def test_bad_pairs_are_one_line_errors():
    sa = _component()
    mr = torch.zeros(2, 4, 32, 32)
    with pytest.raises(PeraDataError, match='HR image is 63x64 px but must be scale'):
        sa.check_pair(mr, torch.zeros(2, 4, 63, 64))
    with pytest.raises(PeraDataError, match="with the MR batch's B and C"):
        sa.check_pair(mr, torch.zeros(2, 3, 64, 64))
    samples = [SimpleNamespace(metainfo=dict(scale=4))]
    with pytest.raises(PeraDataError, match=r'carry scale \[4\] but .* scale=2'):
        sa.check_pair(mr, torch.zeros(2, 4, 64, 64), samples)
    for bad in (dict(mode='frozen'), dict(snapshot_source='ema'), dict(refresh_interval=0)):
        with pytest.raises(PeraConfigError, match='spatial_affinity'):
            _component(**bad)


class _Host(torch.nn.Module):
    """The minimal host the hook drives: a student, an EMA teacher, the component."""

    def __init__(self, **sa):
        super().__init__()
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            self.backbone = MODELS.build(_vit())
            self.teacher = MODELS.build(_vit())
        self.spatial_affinity = _component(**sa)
        self.teacher.load_state_dict(self.backbone.state_dict())
        self.spatial_affinity.sync(self.backbone)

    def spatial_affinity_sources(self):
        return dict(student=self.backbone, teacher=self.teacher)


def _runner(model, it, max_iters=10, skipped=False, update=True):
    scalars = {}
    hub = SimpleNamespace(update_scalar=lambda k, v: scalars.__setitem__(k, v))
    return SimpleNamespace(
        model=model,
        iter=it,
        max_iters=max_iters,
        optim_wrapper=SimpleNamespace(last_step_skipped=skipped, should_update=lambda: update),
        message_hub=hub,
        scalars=scalars,
    )


def _move(module, by):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(by)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_ema_mode_moves_by_ema_and_not_on_a_skipped_step():
    torch.manual_seed(0)
    host = _Host(mode='ema', momentum=0.9, end_momentum=1.0, loss_weight=2.0, weight_warmup=0.5)
    hook, sa = SpatialAffinityHook(), host.spatial_affinity
    before, student = _params(sa.hr_teacher), None
    _move(host.backbone, 1.0)  # the optimizer step moved the student by +1
    student = _params(host.backbone)
    runner = _runner(host, it=0)
    hook.before_train_iter(runner, 0)
    assert sa.weight == 0.0 and runner.scalars['train/sa_weight'] == 0.0  # warm-up from 0
    hook.after_train_iter(runner, 0)
    assert runner.scalars['train/sa_momentum'] == pytest.approx(0.9)  # cosine at iteration 0
    for t, b, s in zip(sa.hr_teacher.parameters(), before, student):
        assert torch.allclose(t, 0.9 * b + 0.1 * s, atol=1e-6)
    # a skipped step leaves every HR-teacher weight unchanged
    after = _params(sa.hr_teacher)
    _move(host.backbone, 1.0)
    hook.after_train_iter(_runner(host, it=1, skipped=True), 1)
    assert all(torch.equal(a, t) for a, t in zip(after, sa.hr_teacher.parameters()))
    # inside a gradient-accumulation window no optimizer step was taken: no EMA step either
    hook.after_train_iter(_runner(host, it=1, update=False), 1)
    assert all(torch.equal(a, t) for a, t in zip(after, sa.hr_teacher.parameters()))
    # weight schedule: linear over the first half (5 of 10 iterations), then constant
    for it, w in ((2, 0.8), (5, 2.0), (9, 2.0)):
        hook.before_train_iter(_runner(host, it=it), it)
        assert sa.weight == pytest.approx(w)
    assert sa.momentum_at(10, 10) == pytest.approx(1.0)


@pytest.mark.parametrize('source', ['teacher', 'student'])
def test_snapshot_mode_moves_only_at_a_refresh(source):
    torch.manual_seed(0)
    host = _Host(mode='snapshot', snapshot_source=source, refresh_interval=3)
    hook, sa = SpatialAffinityHook(), host.spatial_affinity
    src = host.spatial_affinity_sources()[source]
    initial = _params(sa.hr_teacher)
    for it in (0, 1):  # no refresh after iterations 0 and 1
        _move(host.backbone, 0.5)
        _move(host.teacher, 0.25)
        hook.after_train_iter(_runner(host, it=it), it)
        assert all(torch.equal(a, t) for a, t in zip(initial, sa.hr_teacher.parameters()))
    hook.after_train_iter(_runner(host, it=2, skipped=True), 2)  # due, but skipped
    assert all(torch.equal(a, t) for a, t in zip(initial, sa.hr_teacher.parameters()))
    hook.after_train_iter(_runner(host, it=5), 5)  # (5 + 1) % 3 == 0: refresh
    assert all(torch.equal(s, t) for s, t in zip(src.parameters(), sa.hr_teacher.parameters()))
    assert not any(torch.equal(a, t) for a, t in zip(initial, sa.hr_teacher.parameters()))


def test_hook_without_component_is_one_line_error():
    runner = _runner(torch.nn.Linear(2, 2), it=0)
    with pytest.raises(PeraConfigError, match='has no spatial_affinity'):
        SpatialAffinityHook().before_train(runner)


# --------------------------------------------------------------------- PerA host


def _pera_cfg(**extra):
    return dict(
        type='PerA',
        backbone=dict(_vit(), drop_path_rate=0.1, drop_path_mode='subset'),
        projector=dict(
            type='PerADINOHead', out_channels=64, hidden_channels=32, bottleneck_channels=16
        ),
        predictor=dict(type='PixelPredictionHead', hidden_channels=32, bottleneck_channels=16),
        cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9),
        pixel_loss=dict(type='PixelMSELoss', loss_weight=0.01, reduction='patch_sum'),
        koleo_loss=dict(type='KoLeoLoss', loss_weight=0.1),
        **extra,
    )


def _masks(n, L, seed):
    """Disjoint flags per row: 3 s, 3 l, the rest t (16 patches of a 4 x 4 grid)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        perm = torch.randperm(L, generator=g)
        m = torch.full((L,), MASK_T)
        m[perm[:3]], m[perm[3:6]] = MASK_S, MASK_L
        rows.append(m)
    return torch.stack(rows)


def _pera_step(model, B=2, nG=2, seed=0, hr=True):
    g = torch.Generator().manual_seed(seed)
    mr = torch.randn(nG * B, 4, 32, 32, generator=g)
    views = dict(
        s_glob=mr,
        t_glob=mr + 0.1,
        s_loc=torch.randn(nG * B, 4, 16, 16, generator=g),
        t_loc=torch.randn(nG * B, 4, 16, 16, generator=g),
        gmask=_masks(nG * B, 16, seed),
        lmask=torch.tensor([[MASK_S, MASK_T, MASK_T, MASK_S]] * (nG * B)),
        batch_size=B,
    )
    if hr:  # the co-registered HR crops: 2x, real detail stands in as a random map
        views['hr_glob'] = torch.randn(nG * B, 4, 64, 64, generator=g)
    torch.manual_seed(seed + 1)  # drop path draws
    return model.loss_from_views(**views)


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    return model


def test_pera_weight_zero_equals_the_host_alone_values_and_gradients():
    host = _build(_pera_cfg())
    with_sa = _build(_pera_cfg(spatial_affinity=dict(loss_weight=0.0)))
    # the component consumes no random numbers: the host's weights are the same
    sd = with_sa.state_dict()
    for k, v in host.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert any(k.startswith('spatial_affinity.hr_teacher.') for k in sd)
    a, b = _pera_step(host, hr=False), _pera_step(with_sa)
    assert 'loss_spatial_affinity' not in b and torch.isfinite(b['monitor_sa_gram'])
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
    sum(v for k, v in a.items() if 'loss' in k).backward()
    sum(v for k, v in b.items() if 'loss' in k).backward()
    grads = dict(with_sa.named_parameters())
    for name, p in host.named_parameters():
        q = grads[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name


def test_pera_with_the_component_adds_a_loss_that_reaches_the_student_only():
    model = _build(_pera_cfg(spatial_affinity=dict(loss_weight=1.0, downsample='bicubic')))
    losses = _pera_step(model)
    sa_loss = losses['loss_spatial_affinity']
    assert sa_loss.item() == pytest.approx(losses['monitor_sa_gram'].item()) and sa_loss > 0
    sa_loss.backward()
    assert model.backbone.blocks[-1].attn.qkv.weight.grad.abs().sum() > 0
    assert model.mask_token.grad.abs().sum() > 0  # the l outputs start from the mask token
    assert all(p.grad is None for p in model.spatial_affinity.hr_teacher.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.predictor.last_layer.weight_v.grad is None  # before the pixel head


def test_pera_component_needs_hr_crops_and_l_patches():
    model = _build(_pera_cfg(spatial_affinity=dict()))
    with pytest.raises(PeraDataError, match='no HR global crops'):
        _pera_step(model, hr=False)
    cfg = _pera_cfg(spatial_affinity=dict())
    cfg.update(predictor=None, pixel_loss=None)
    with pytest.raises(PeraConfigError, match='needs a predictor'):
        _build(cfg)
    with pytest.raises(PeraConfigError, match='derived from the host encoder'):
        _build(_pera_cfg(spatial_affinity=dict(embed_dims=8)))


def test_linear_downsampling_learns_from_the_gram_loss():
    """The learned projection sits on the teacher side, so the gram loss must reach it."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        student = MODELS.build(_vit())
    sa = _component(downsample='linear')
    sa.sync(student)
    mr, hr = torch.randn(2, 4, 32, 32), torch.randn(2, 4, 64, 64)
    idx = torch.stack([torch.randperm(16)[:6] for _ in range(2)])
    feats = _encode(student, mr).gather(1, idx[..., None].expand(-1, -1, 32))
    sa(feats, idx, (4, 4), hr, _encode)['loss_spatial_affinity'].backward()
    assert sa.downsample.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in sa.hr_teacher.parameters())
