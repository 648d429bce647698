"""DINOv3 RoPE in PerAViT: hand-computed values, timm's numbers, and the sparse
teacher / student paths with RoPE and register tokens equal to the full grid
with attention masks (values and gradients, 1e-5)."""

import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from timm.layers.pos_embed_sincos import RotaryEmbeddingDinoV3

from pera_mm.models.backbones import PerAViT
from pera_mm.models.utils.rope import RotaryPositionEmbedding2D, apply_rope
from pera_mm.utils.errors import PeraConfigError

ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
TOL = dict(atol=1e-5, rtol=1e-5)
R = 2  # register tokens


def test_coordinates_and_angles_by_hand():
    """2x2 grid: coordinates (+-1/2, +-1/2); head width 8: periods 1 and 100^(1/2) = 10."""
    rope = RotaryPositionEmbedding2D(8, base=100)
    coords = rope.grid_coords((2, 2))
    assert coords.tolist() == [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]]
    assert torch.allclose(rope.periods(), torch.tensor([1.0, 10.0]))
    sin, cos = rope.sincos(coords)
    # token 1 (row -1/2, col +1/2): angles 2 pi * [-1/2, -1/20, 1/2, 1/20], tiled twice
    angles = 2 * math.pi * torch.tensor([-0.5, -0.05, 0.5, 0.05])
    torch.testing.assert_close(sin[1], torch.cat([angles, angles]).sin())
    torch.testing.assert_close(cos[1], torch.cat([angles, angles]).cos())
    # rotate-half: x = e1 turns into cos(a1) e1 + sin(a1) e5, a1 = -pi / 10
    x = torch.zeros(8)
    x[1] = 1.0
    out = apply_rope(x, sin[1], cos[1])
    expected = torch.zeros(8)
    expected[1], expected[5] = math.cos(-math.pi / 10), math.sin(-math.pi / 10)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('grid', [(4, 4), (3, 5)])
def test_same_numbers_as_timm_dinov3_rope(grid):
    ours = RotaryPositionEmbedding2D(64, base=100)
    theirs = RotaryEmbeddingDinoV3(64, temperature=100, rotate_half=True)
    sin, cos = theirs.get_embed(shape=list(grid)).chunk(2, dim=-1)
    s, c = ours.sincos(ours.grid_coords(grid))
    torch.testing.assert_close(s, sin, atol=1e-6, rtol=0)
    torch.testing.assert_close(c, cos, atol=1e-6, rtol=0)


def test_train_time_rescale_is_one_shared_factor_and_off_in_eval():
    rope = RotaryPositionEmbedding2D(8, rescale_coords=2.0)
    grid = rope.grid_coords((4, 4))
    assert torch.equal(rope.eval().augment(grid), grid)
    torch.manual_seed(0)
    scaled = rope.train().augment(grid)
    factor = scaled / grid
    assert torch.allclose(factor, factor[0, 0]) and 0.5 <= factor[0, 0] <= 2.0
    assert not torch.allclose(scaled, grid)
    with pytest.raises(PeraConfigError, match='jitter_coords must be None or a number >= 1.0'):
        RotaryPositionEmbedding2D(8, jitter_coords=0.5)


def make_vit(**kwargs):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = PerAViT(
            arch=ARCH,
            img_size=64,
            patch_size=16,
            num_register_tokens=R,
            pos_embed_layout='none',
            rope=dict(base=100),
            qkv_bias='qv',
            layer_scale_init_value=0.5,
            **kwargs,
        )
    vit.init_weights()
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if p.dim() == 1 or 'token' in name:
                p.normal_(0, 1)
    return vit.eval()


def reference_block(blk, x, rope, key_mask=None):
    """Pre-norm block with explicit q / k rotation and softmax attention; rope =
    (sin, cos) over the whole sequence (identity on cls and registers)."""
    h = blk.norm1(x)
    B, T, C = h.shape
    heads = blk.attn.num_heads
    q, k, v = blk.attn.qkv_projection(h).reshape(B, T, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    sin, cos = (t.unsqueeze(1) for t in rope)
    q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
    logits = q @ k.transpose(-1, -2) / (C // heads) ** 0.5
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], float('-inf'))
    a = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    x = x + blk.ls1(blk.attn.proj(a))
    return x + blk.ls2(blk.mlp(blk.norm2(x)))


def full_grid_rope(vit, n):
    return vit.rope_for(vit.rope_coords((4, 4)).unsqueeze(0).expand(n, -1, -1))


def random_split(n_img, L, n_s, n_l, seed=0):
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(L, generator=g) for _ in range(n_img)])
    s_idx = perm[:, :n_s].sort(1).values
    l_idx = perm[:, n_s : n_s + n_l].sort(1).values
    return s_idx, l_idx, perm[:, n_s + n_l :].sort(1).values


def grads(vit):
    out = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
    vit.zero_grad()
    return out


def test_dense_path_rotates_patches_only():
    vit = make_vit()
    sin, cos = full_grid_rope(vit, 1)
    assert sin.shape == (1, 1 + R + 16, 32)
    assert torch.equal(sin[:, : 1 + R], torch.zeros(1, 1 + R, 32))
    assert torch.equal(cos[:, : 1 + R], torch.ones(1, 1 + R, 32))
    x = torch.randn(2, 3, 64, 64)
    prefix, patches, _ = vit.embed(x)
    h = torch.cat([prefix, patches], 1)
    for blk in vit.blocks:
        h = reference_block(blk, h, (sin, cos))
    cls, registers, out = vit.forward_features(x)
    h = vit.norm(h)
    torch.testing.assert_close(cls, h[:, 0], **TOL)
    torch.testing.assert_close(registers, h[:, 1 : 1 + R], **TOL)
    torch.testing.assert_close(out, h[:, 1 + R :], **TOL)
    torch.testing.assert_close(vit(x)[0], h[:, 0], **TOL)


def test_sparse_teacher_path_with_rope_equals_masked_full_grid():
    """Gathered kept tokens with their gathered coordinates == all 16 patches with
    the dropped ones masked out of attention; values and gradients."""
    vit = make_vit()
    x = torch.randn(2, 3, 64, 64)
    _, _, keep = random_split(2, 16, 3, 4)
    out = vit.forward_sparse(x, keep)
    assert out.shape == (2, 1 + keep.shape[1], 64)  # registers are not returned
    out.square().sum().backward()
    g_sparse = grads(vit)

    prefix, patches, _ = vit.embed(x)
    h = torch.cat([prefix, patches], 1)
    key_mask = torch.zeros(2, 1 + R + 16, dtype=torch.bool)
    key_mask[:, : 1 + R] = True
    key_mask.scatter_(1, keep + 1 + R, True)
    rope = full_grid_rope(vit, 2)
    for blk in vit.blocks:
        h = reference_block(blk, h, rope, key_mask)
    h = vit.norm(h)
    ref = torch.cat(
        [h[:, :1], torch.gather(h[:, 1 + R :], 1, keep[..., None].expand(-1, -1, 64))], 1
    )
    torch.testing.assert_close(out, ref, **TOL)
    ref.square().sum().backward()
    g_ref = grads(vit)
    assert set(g_sparse) == set(g_ref)
    for name in g_ref:
        torch.testing.assert_close(g_sparse[name], g_ref[name], **TOL, msg=name)


def test_student_path_with_rope_equals_masked_full_grid():
    """s tokens with their coordinates, then mask tokens at the coordinates of the
    slots they fill == the full grid where early blocks attend to cls + registers
    + s and late ones also to the l slots (mask token there)."""
    vit = make_vit()
    mask_token = torch.randn(1, 1, 64, requires_grad=True)
    x = torch.randn(2, 3, 64, 64)
    s_idx, l_idx, _ = random_split(2, 16, 5, 6, seed=1)
    cls_out, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)
    (cls_out.square().sum() + l_out.square().sum()).backward()
    g_student, g_mask = grads(vit), mask_token.grad.clone()
    mask_token.grad = None

    prefix, patches, pos = vit.embed(x)
    h = torch.cat([prefix, patches], 1)
    visible = torch.zeros(2, 1 + R + 16, dtype=torch.bool)
    visible[:, : 1 + R] = True
    visible.scatter_(1, s_idx + 1 + R, True)
    rope = full_grid_rope(vit, 2)
    for blk in vit.blocks[: vit.mask_token_layer]:
        h = reference_block(blk, h, rope, visible)
    l_mask = torch.zeros(2, 16, dtype=torch.bool).scatter_(1, l_idx, True)
    body = torch.where(l_mask[..., None], mask_token + pos, h[:, 1 + R :])
    h = torch.cat([h[:, : 1 + R], body], 1)
    for blk in vit.blocks[vit.mask_token_layer :]:
        h = reference_block(blk, h, rope, visible | F.pad(l_mask, (1 + R, 0)))
    h = vit.norm(h)
    ref_l = torch.gather(h[:, 1 + R :], 1, l_idx[..., None].expand(-1, -1, 64))
    torch.testing.assert_close(cls_out, h[:, 0], **TOL)
    torch.testing.assert_close(l_out, ref_l, **TOL)
    (h[:, 0].square().sum() + ref_l.square().sum()).backward()
    g_ref = grads(vit)
    torch.testing.assert_close(g_mask, mask_token.grad, **TOL)
    for name in g_ref:
        torch.testing.assert_close(g_student[name], g_ref[name], **TOL, msg=name)


def test_one_coordinate_draw_per_forward_in_training():
    """With train-time jitter each path draws its coordinates once and both
    student phases see the same draw."""
    vit = make_vit()
    vit.rope.rescale_coords = 2.0
    vit.train()
    calls = []
    augment = vit.rope.augment
    vit.rope.augment = lambda c: calls.append(1) or augment(c)
    s_idx, l_idx, t_idx = random_split(2, 16, 4, 4)
    x = torch.randn(2, 3, 64, 64)
    vit.forward_student(x, s_idx, l_idx, torch.zeros(1, 1, 64))
    vit.forward_sparse(x, t_idx)
    assert len(calls) == 2
    torch.manual_seed(3)
    a = vit.forward_sparse(x, t_idx)
    torch.manual_seed(4)
    b = vit.forward_sparse(x, t_idx)
    assert not torch.allclose(a, b)  # the draw changes the features


def test_pera_trains_with_a_rope_and_register_backbone():
    """PerA itself needs no change: its sparse teacher / student calls carry the
    kept tokens' coordinates through the backbone; one loss step is finite and
    reaches the registers, the q / v biases and the mask token."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS, TRANSFORMS

    from pera_mm.testing import REPO_ROOT, synthetic_batch
    from pera_mm.testing.config_shrink import TINY_ARCH, shrink_model_config, shrink_pipeline

    cfg = Config.fromfile(REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py')
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model_cfg = shrink_model_config(
            cfg.model, TINY_ARCH, 64, 256, hidden_channels=96, bottleneck_channels=32
        )
        model_cfg['backbone'].update(
            num_register_tokens=R,
            pos_embed_layout='none',
            rope=dict(base=100, rescale_coords=2),
            qkv_bias='qv',
            norm_eps=1e-5,
        )
        model = MODELS.build(model_cfg)
        model.init_weights()
        pipeline = [
            TRANSFORMS.build(t)
            for t in shrink_pipeline(cfg.train_dataloader.dataset.pipeline, 64, 32, 2)
        ]
    data = model.data_preprocessor(synthetic_batch(pipeline, 4, 96, 0), training=True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    vit = model.backbone
    assert vit.rope is not None and model.teacher.backbone.rope is not None
    assert vit.register_tokens.grad.abs().sum() > 0
    assert vit.blocks[0].attn.q_bias.grad.abs().sum() > 0
    assert model.mask_token.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_activation_checkpointing_carries_the_rotation():
    x = torch.randn(2, 3, 64, 64)
    _, _, keep = random_split(2, 16, 3, 5)
    outs = []
    for with_cp in (False, True):
        vit = make_vit(with_cp=with_cp)
        out = vit.forward_sparse(x, keep)
        out.square().sum().backward()
        outs.append((out.detach(), grads(vit)))
    torch.testing.assert_close(outs[0][0], outs[1][0], **TOL)
    for name, g in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][name], g, **TOL, msg=name)
