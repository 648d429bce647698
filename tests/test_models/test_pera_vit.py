import pytest
import torch
import torch.nn.functional as F

from pera_mm.models.backbones import PerAViT
from pera_mm.models.utils import Block, resize_pos_embed

ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)


def make_vit(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('img_size', 64)
    model = PerAViT(arch=ARCH, patch_size=16, **kwargs)
    model.init_weights()
    return model.eval()


def patch_pixels(img, idx, p=16, grid=4):
    """Boolean pixel mask covering patch indices ``idx`` of one image."""
    m = torch.zeros(img.shape[-2:], dtype=torch.bool)
    for i in idx.tolist():
        r, c = divmod(i, grid)
        m[r * p : (r + 1) * p, c * p : (c + 1) * p] = True
    return m


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match='unknown arch'):
        PerAViT(arch='huge-ish')
    with pytest.raises(ValueError, match='img_size .* not divisible by patch_size 16'):
        PerAViT(arch=ARCH, img_size=100, patch_size=16)
    with pytest.raises(ValueError, match='out_type'):
        PerAViT(arch=ARCH, img_size=64, out_type='tokens')
    with pytest.raises(ValueError, match='input size'):
        make_vit()(torch.zeros(1, 3, 70, 64))
    with pytest.raises(ValueError, match="path must be 'dense'"):
        make_vit()(torch.zeros(1, 3, 64, 64), path='teacher')


def test_arch_zoo_sizes():
    with torch.device('meta'):
        giant = PerAViT(arch='giant-1024', img_size=224)
        base = PerAViT(arch='base', img_size=224)
    assert 500e6 < sum(p.numel() for p in giant.parameters()) < 510e6  # slim ViT-G, ~505 M
    assert 85e6 < sum(p.numel() for p in base.parameters()) < 87.5e6  # ViT-B, 86 M


def test_dense_forward_out_types():
    x = torch.randn(2, 3, 64, 96)
    fm = make_vit(out_type='featmap', out_indices=(1, 3))(x)
    assert [tuple(f.shape) for f in fm] == [(2, 64, 4, 6), (2, 64, 4, 6)]
    cls = make_vit(out_type='cls_token')(x)[0]
    raw = make_vit(out_type='raw')(x)[0]
    assert cls.shape == (2, 64) and raw.shape == (2, 1 + 24, 64)
    torch.testing.assert_close(cls, raw[:, 0])
    avg = make_vit(out_type='avg_featmap')(x)[0]
    torch.testing.assert_close(avg, raw[:, 1:].mean(1))


def test_teacher_path_sees_only_kept_patches():
    vit = make_vit()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    keep = torch.stack([torch.randperm(16)[:9].sort().values for _ in range(2)])
    out = vit.forward_sparse(x, keep)
    assert out.shape == (2, 10, 64)
    x2 = x.clone()
    for b in range(2):
        dropped = torch.tensor([i for i in range(16) if i not in keep[b]])
        x2[b][:, patch_pixels(x[b], dropped)] = 5.0
    torch.testing.assert_close(vit.forward_sparse(x2, keep), out)
    x3 = x.clone()
    x3[0][:, patch_pixels(x[0], keep[0][:1])] += 1.0
    assert not torch.allclose(vit.forward_sparse(x3, keep)[0], out[0])


def reference_student(vit, x, s_idx, l_idx, mask_token):
    """Token-by-token reference of the student path."""
    cls, patches, pos = vit.embed(x)
    outs_cls, outs_l = [], []
    half = vit.mask_token_layer
    for b in range(x.shape[0]):
        h = torch.cat([cls[b : b + 1], patches[b : b + 1, s_idx[b]]], 1)
        for blk in vit.blocks[:half]:
            h = blk(h)
        seq, s_ptr = [h[:, 0]], 1
        for i in range(patches.shape[1]):
            if i in s_idx[b]:
                seq.append(h[:, s_ptr])
                s_ptr += 1
            elif i in l_idx[b]:
                seq.append(mask_token[0] + pos[:, i])
        h = torch.stack(seq, 1)
        for blk in vit.blocks[half:]:
            h = blk(h)
        h = vit.norm(h)
        order = sorted(s_idx[b].tolist() + l_idx[b].tolist())
        outs_cls.append(h[:, 0])
        outs_l.append(h[:, [1 + order.index(i) for i in l_idx[b].tolist()]])
    return torch.cat(outs_cls), torch.cat(outs_l)


def test_student_path_injects_mask_tokens_in_raster_order():
    vit = make_vit()
    torch.manual_seed(2)
    x = torch.randn(3, 3, 64, 64)
    perms = [torch.randperm(16) for _ in range(3)]
    s_idx = torch.stack([p[:3].sort().values for p in perms])
    l_idx = torch.stack([p[3:6].sort().values for p in perms])
    token = torch.randn(1, 1, 64)
    cls, l_out = vit.forward_student(x, s_idx, l_idx, token)
    ref_cls, ref_l = reference_student(vit, x, s_idx, l_idx, token)
    assert l_out.shape == (3, 3, 64)
    torch.testing.assert_close(cls, ref_cls, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(l_out, ref_l, atol=1e-5, rtol=1e-5)
    assert vit.mask_token_layer == 2  # depth // 2


def test_student_ignores_pixels_of_l_and_t_patches():
    vit = make_vit()
    x = torch.randn(1, 3, 64, 64)
    perm = torch.randperm(16)
    s_idx, l_idx = perm[:4].sort().values[None], perm[4:8].sort().values[None]
    token = torch.randn(1, 1, 64)
    cls, l_out = vit.forward_student(x, s_idx, l_idx, token)
    x2 = x.clone()
    x2[0][:, patch_pixels(x[0], perm[4:])] = -3.0  # l and t pixels
    cls2, l_out2 = vit.forward_student(x2, s_idx, l_idx, token)
    torch.testing.assert_close(cls2, cls)
    torch.testing.assert_close(l_out2, l_out)


def test_dense_masked_path_replaces_l_patches():
    vit = make_vit(mask_token_layer=0)
    x = torch.randn(2, 3, 64, 64)
    l_mask = torch.zeros(2, 16, dtype=torch.bool)
    l_mask[0, [1, 5]] = True
    token = torch.randn(1, 1, 64)
    seq = vit.forward_masked_dense(x, l_mask, token)
    x2 = x.clone()
    x2[0][:, patch_pixels(x[0], torch.tensor([1, 5]))] = 9.0
    torch.testing.assert_close(vit.forward_masked_dense(x2, l_mask, token), seq)
    # no masked patch: identical to the plain sparse path with every patch kept
    torch.testing.assert_close(seq[1], vit.forward_sparse(x, None)[1], atol=1e-6, rtol=1e-6)


def test_pos_embed_interpolated_when_loading_other_size():
    src = make_vit(img_size=64)
    dst = PerAViT(arch=ARCH, img_size=96, patch_size=16)
    result = dst.load_state_dict(src.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert dst.pos_embed.shape == (1, 1 + 36, 64)
    grid = src.pos_embed[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(6, 6), mode='bicubic', align_corners=False)
    torch.testing.assert_close(dst.pos_embed[:, 1:], expect.permute(0, 2, 3, 1).reshape(1, 36, 64))
    torch.testing.assert_close(dst.pos_embed[:, :1], src.pos_embed[:, :1])


def test_runtime_pos_embed_uses_offset_convention():
    vit = make_vit(img_size=64, interpolate_offset=0.1)
    pos = vit.pos_embed_for((2, 2))
    grid = vit.pos_embed[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, scale_factor=(2.1 / 4, 2.1 / 4), mode='bicubic')
    torch.testing.assert_close(pos[:, 1:], expect.permute(0, 2, 3, 1).reshape(1, 4, 64))
    assert not torch.allclose(pos, resize_pos_embed(vit.pos_embed, (4, 4), (2, 2)))


def test_subset_drop_path_updates_exactly_the_sampled_rows():
    torch.manual_seed(3)
    x = torch.zeros(16, 5, 8)
    for rows in ('index_select', 'advanced'):
        blk = Block(8, 2, 16, subset_rows=rows)
        torch.manual_seed(3)
        out = blk._subset_residual(x, lambda t: torch.ones_like(t), p=0.3)
        touched = out.abs().sum((1, 2)) > 0
        assert int(touched.sum()) == 11  # int(16 * 0.7)
        torch.testing.assert_close(out[touched], torch.full((11, 5, 8), 16 / 11))


def test_activation_checkpointing_gives_same_gradients():
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for with_cp in (False, True):
        vit = make_vit(with_cp=with_cp).train()
        vit.forward_sparse(x, None).sum().backward()
        grads.append(vit.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
