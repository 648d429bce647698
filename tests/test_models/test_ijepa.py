"""I-JEPA: the multi-block mask sampler's rules, the encoder and predictor, bad input."""

import pytest
import torch
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401  (registration)
from pera_mm.models.utils import sincos_pos_embed_2d
from pera_mm.models.utils.multiblock_mask_sampler import MultiBlockMaskSampler
from pera_mm.utils import PeraConfigError, PeraDataError
from pera_mm.utils.ijepa_checkpoint import convert_ijepa_checkpoint, load_ijepa_checkpoint

TINY = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def tiny_ijepa(img_size=56, in_channels=4, **sampler):
    return MODELS.build(
        dict(
            type='IJEPA',
            backbone=dict(
                type='IJEPAViT',
                arch=TINY,
                img_size=img_size,
                patch_size=14,
                in_channels=in_channels,
            ),
            neck=dict(type='IJEPAPredictor', embed_dims=32, num_layers=1),
            mask_sampler=dict(dict(target_scale=(0.2, 0.3), min_keep=1), **sampler),
            data_preprocessor=dict(type='MultiBandDataPreProcessor', num_bands=in_channels),
        )
    )


def rect_of(idx, width):
    rows, cols = (idx // width).tolist(), (idx % width).tolist()
    return min(rows), max(rows) + 1, min(cols), max(cols) + 1


# ---------------------------------------------------------------- the sampler rules
def test_sampler_rules_over_many_batches():
    """Reference settings on the 16x16 grid of ViT/14 at 224 px, 40 batches of 6."""
    sampler = MultiBlockMaskSampler((16, 16), min_keep=10)
    H = W = 16
    sizes_seen = set()
    for _ in range(40):
        ctx, tgt = sampler(6)
        raw = sampler.last_untruncated
        # block size once per batch: every target block of every image is the same h x w
        shapes = set()
        for blocks in raw['targets']:
            for idx in blocks:
                top, bottom, left, right = rect_of(idx, W)
                assert idx.numel() == (bottom - top) * (right - left)  # a full rectangle
                assert bottom < H and right < W  # never the last row or column
                shapes.add((bottom - top, right - left))
        assert len(shapes) == 1
        sizes_seen |= shapes
        # positions per image: the blocks are not all at one place
        corners = {rect_of(idx, W)[::2] for blocks in raw['targets'] for idx in blocks}
        assert len(corners) > 1
        for b in range(6):
            c = raw['contexts'][b][0]
            assert c.numel() > 10  # min_keep (strict)
            targets_b = torch.cat(raw['targets'][b])
            assert not set(c.tolist()) & set(targets_b.tolist())  # disjoint
            assert torch.all(c[1:] > c[:-1])  # ascending raster order
        # truncation to the batch minimum, keeping the lowest indices
        k_ctx = min(x[0].numel() for x in raw['contexts'])
        k_tgt = min(i.numel() for blocks in raw['targets'] for i in blocks)
        assert ctx[0].shape == (6, k_ctx) and all(t.shape == (6, k_tgt) for t in tgt)
        for b in range(6):
            assert torch.equal(ctx[0][b], raw['contexts'][b][0][:k_ctx])
            assert all(torch.equal(tgt[j][b], raw['targets'][b][j][:k_tgt]) for j in range(4))
    assert len(sizes_seen) > 1  # sizes change from batch to batch
    assert int(sampler.calls) == 40


def test_sampler_seeding_and_exact_resume(monkeypatch):
    a = MultiBlockMaskSampler((8, 8), min_keep=4)
    first = [a(4) for _ in range(3)]
    b = MultiBlockMaskSampler((8, 8), min_keep=4)
    b.load_state_dict(a.state_dict())  # a checkpoint after 3 calls
    a_next, b_next = a(4), b(4)
    for x, y in zip(a_next[0] + a_next[1], b_next[0] + b_next[1]):
        assert torch.equal(x, y)
    # a fresh sampler replays the first calls; another seed does not
    fresh = MultiBlockMaskSampler((8, 8), min_keep=4)
    assert all(torch.equal(x, y) for x, y in zip(fresh(4)[1], first[0][1]))
    other = MultiBlockMaskSampler((8, 8), min_keep=4, seed=1)
    draws = [other(4) for _ in range(3)]
    assert any(not torch.equal(x[1][0], y[1][0]) for x, y in zip(draws, first))
    # another rank: the same block sizes (drawn from the call counter), other positions
    monkeypatch.setattr('pera_mm.models.utils.multiblock_mask_sampler.get_rank', lambda: 1)
    rank1 = MultiBlockMaskSampler((8, 8), min_keep=4)
    r1 = [rank1(4) for _ in range(3)]
    assert all(x[1][0].shape == y[1][0].shape for x, y in zip(r1, first))
    assert any(not torch.equal(x[1][0], y[1][0]) for x, y in zip(r1, first))


def test_sampler_recorded_draws_entry_point():
    sampler = MultiBlockMaskSampler((8, 8), num_targets=1, min_keep=2)
    # r=0: target 0.15 * 64 -> 9 patches, ar 0.75 -> 3x3; context r=0 -> 54 -> 7x7
    ctx, tgt = sampler.sample_from_draws(1, [0.0, 0.0], [1, 2, 0, 0])
    assert tgt[0][0].tolist() == [r * 8 + c for r in (1, 2, 3) for c in (2, 3, 4)]
    expected_ctx = [
        r * 8 + c for r in range(7) for c in range(7) if not (1 <= r <= 3 and 2 <= c <= 4)
    ]
    assert ctx[0][0].tolist() == expected_ctx
    with pytest.raises(PeraDataError, match='outside'):
        sampler.sample_from_draws(1, [0.0, 0.0], [9, 0])


def test_min_keep_unreachable_is_one_line_at_build():
    with pytest.raises(PeraConfigError) as err:
        tiny_ijepa(min_keep=10)  # a 4x4 grid: context blocks of at most 3x3 = 9 patches
    msg = str(err.value)
    assert '\n' not in msg and 'min_keep=10' in msg and 'block' in msg


def test_image_size_not_divisible_by_the_patch():
    with pytest.raises(PeraConfigError) as err:
        tiny_ijepa(img_size=50)
    assert 'img_size 50x50 is not divisible by patch_size 14' in str(err.value)
    model = tiny_ijepa()
    with pytest.raises(PeraConfigError, match='input size 50x56 is not divisible'):
        model.loss(torch.zeros(2, 4, 50, 56), None)
    with pytest.raises(PeraDataError, match='mask sampler draws on 4x4'):
        model.loss(torch.zeros(2, 4, 70, 70), None)


# ---------------------------------------------------------------- encoder and predictor
def test_positions_recompute_or_interpolate():
    from pera_mm.models.backbones import IJEPAViT

    vit = IJEPAViT(arch=TINY, img_size=56, patch_size=14, in_channels=3)
    assert torch.equal(vit.pos_embed_for((4, 4)), sincos_pos_embed_2d((4, 4), 64))
    assert torch.equal(vit.pos_embed_for((8, 6)), sincos_pos_embed_2d((8, 6), 64))
    interp = IJEPAViT(arch=TINY, img_size=56, patch_size=14, pos_embed_mode='interpolate')
    resized = interp.pos_embed_for((8, 8))
    assert resized.shape == (1, 64, 64) and not torch.allclose(
        resized, sincos_pos_embed_2d((8, 8), 64)
    )
    # the HR-teacher use: a 2x input runs on a true 8x8 table
    vit.init_weights()
    out = vit(torch.randn(1, 3, 112, 112))[0]
    assert out.shape == (1, 64)
    feat = IJEPAViT(arch=TINY, img_size=56, out_type='featmap')(torch.randn(2, 3, 56, 84))[0]
    assert feat.shape == (2, 64, 4, 6)


def test_predictor_blocks_are_separate_sequences():
    model = tiny_ijepa()
    model.init_weights()
    model.eval()
    x = torch.randn(2, 4, 56, 56)
    ctx = torch.tensor([[0, 1, 4, 5, 8], [1, 2, 5, 6, 9]])
    t0 = torch.tensor([[10, 11], [6, 10]])
    t1a, t1b = torch.tensor([[2, 6], [0, 4]]), torch.tensor([[9, 13], [12, 13]])
    pa = model.predict_targets(x, ctx, [t0, t1a])
    pb = model.predict_targets(x, ctx, [t0, t1b])
    assert pa['predictions'].shape == (4, 2, 64)
    # block-major rows: block 0 (rows 0-1) does not see block 1's queries
    assert torch.allclose(pa['predictions'][:2], pb['predictions'][:2], atol=1e-6)
    assert not torch.allclose(pa['predictions'][2:], pb['predictions'][2:])
    # targets: affine-free layer norm of the target encoder's features
    h = pa['target_features']
    assert torch.allclose(h.mean(-1), torch.zeros(2, 16), atol=1e-5)
    assert torch.allclose(pa['targets'][2], h[0, t1a[0]])


def test_training_steps_lower_the_loss_and_move_the_target_by_ema():
    torch.manual_seed(0)
    model = tiny_ijepa()
    model.init_weights()
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.backbone.parameters(), model.target_encoder.parameters())
    )
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = torch.randn(4, 4, 56, 56)
    ctx, tgt = model.mask_sampler.sample_from_draws(4, [0.5, 0.5], [0] * 200)
    losses = []
    for _ in range(15):
        loss = model.loss_from_masks(x, ctx[0], tgt)['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    before = [p.clone() for p in model.target_encoder.parameters()]
    model.update_teacher(0.9)
    for b, t, s in zip(before, model.target_encoder.parameters(), model.backbone.parameters()):
        assert torch.allclose(t, 0.9 * b + 0.1 * s, atol=1e-7)


def reference_predictor_name(name):
    """Our predictor name -> the reference's (the inverse of the converter's renames)."""
    if name == 'mask_token':
        return name
    if name == 'pos_embed':
        return 'predictor_pos_embed'
    return 'predictor_' + name  # blocks.*, embed.*, norm.*, proj.*


def test_reference_checkpoint_keys_with_module_prefix():
    model = tiny_ijepa()
    ref = {
        'encoder': {
            'module.' + k[len('backbone.') :]: v
            for k, v in model.state_dict().items()
            if k.startswith('backbone.')
        },
        'predictor': {
            'module.' + reference_predictor_name(k[len('neck.') :]): v
            for k, v in model.state_dict().items()
            if k.startswith('neck.')
        },
        'epoch': 3,
    }
    state = convert_ijepa_checkpoint(ref)
    assert set(state) == {k for k in model.state_dict() if k.startswith(('backbone.', 'neck.'))}
    report = load_ijepa_checkpoint(model, ref)
    assert report['unexpected'] == []
    assert set(report['missing']) == {
        k for k in model.state_dict() if k.startswith('target_encoder.')
    } | {'mask_sampler.calls'}
    with pytest.raises(PeraDataError, match='not an I-JEPA checkpoint'):
        convert_ijepa_checkpoint({'state_dict': {}})
