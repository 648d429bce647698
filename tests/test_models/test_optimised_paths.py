"""Every performance path computes what the plain path computes (to 1e-5, CPU).

The plain references here spend the compute the optimised paths avoid: explicit
softmax attention instead of fused SDPA, the full patch grid with an attention
mask instead of gathered sparse tokens, an eager block instead of a compiled one.
"""

import pytest
import torch
import torch.nn.functional as F

from pera_mm.models.backbones import PerAViT
from pera_mm.models.utils import Block
from pera_mm.utils.errors import PeraConfigError

ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
TOL = dict(atol=1e-5, rtol=1e-5)


def make_vit(**kwargs):
    torch.manual_seed(0)
    vit = PerAViT(arch=ARCH, img_size=64, patch_size=16, **kwargs)
    vit.init_weights()
    with torch.no_grad():  # non-trivial LayerNorms
        for m in vit.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return vit.eval()


def reference_block(blk, x, key_mask=None):
    """Pre-norm block with explicit softmax attention; ``key_mask`` (N, T) bool
    lets every query attend only to the keys where it is True."""
    h = blk.norm1(x)
    B, T, C = h.shape
    heads = blk.attn.num_heads
    q, k, v = blk.attn.qkv(h).reshape(B, T, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) / (C // heads) ** 0.5
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], float('-inf'))
    a = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    x = x + blk.ls1(blk.attn.proj(a))
    return x + blk.ls2(blk.mlp(blk.norm2(x)))


def random_split(n_img, L, n_s, n_l, seed=0):
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(L, generator=g) for _ in range(n_img)])
    s_idx = perm[:, :n_s].sort(1).values
    l_idx = perm[:, n_s : n_s + n_l].sort(1).values
    return s_idx, l_idx, perm[:, n_s + n_l :].sort(1).values


def test_fused_sdpa_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    blk = Block(64, 4, 128).eval()
    x = torch.randn(3, 17, 64, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_()
    out, ref = blk(x), reference_block(blk, ref_x)
    torch.testing.assert_close(out, ref, **TOL)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, **TOL)


def test_sparse_teacher_path_equals_masked_full_grid():
    """Gathering the kept tokens == running all 16 patches with the dropped
    ones masked out of attention (their own outputs then ignored)."""
    vit = make_vit()
    x = torch.randn(2, 3, 64, 64)
    _, _, keep = random_split(2, 16, 3, 3)
    out = vit.forward_sparse(x, keep)

    cls, patches, _ = vit.embed(x)
    h = torch.cat([cls, patches], 1)
    key_mask = torch.zeros(2, 17, dtype=torch.bool)
    key_mask[:, 0] = True
    key_mask.scatter_(1, keep + 1, True)
    for blk in vit.blocks:
        h = reference_block(blk, h, key_mask)
    h = vit.norm(h)
    ref = torch.cat([h[:, :1], torch.gather(h[:, 1:], 1, keep[..., None].expand(-1, -1, 64))], 1)
    torch.testing.assert_close(out, ref, **TOL)


def test_student_mask_token_insertion_equals_masked_full_grid():
    """Sparse s tokens, then mask tokens scattered into raster order == the full
    grid where early blocks attend to cls + s only, then l slots are replaced by
    mask token + position and late blocks attend to cls + s + l."""
    vit = make_vit()
    mask_token = torch.randn(1, 1, 64)
    x = torch.randn(2, 3, 64, 64)
    s_idx, l_idx, _ = random_split(2, 16, 4, 5, seed=1)
    cls_out, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)

    cls, patches, pos = vit.embed(x)
    h = torch.cat([cls, patches], 1)
    visible = torch.zeros(2, 17, dtype=torch.bool)
    visible[:, 0] = True
    visible.scatter_(1, s_idx + 1, True)
    for blk in vit.blocks[: vit.mask_token_layer]:
        h = reference_block(blk, h, visible)
    l_mask = torch.zeros(2, 16, dtype=torch.bool).scatter_(1, l_idx, True)
    body = torch.where(l_mask[..., None], mask_token + pos, h[:, 1:])
    h = torch.cat([h[:, :1], body], 1)
    for blk in vit.blocks[vit.mask_token_layer :]:
        h = reference_block(blk, h, visible | F.pad(l_mask, (1, 0)))
    h = vit.norm(h)
    torch.testing.assert_close(cls_out, h[:, 0], **TOL)
    ref_l = torch.gather(h[:, 1:], 1, l_idx[..., None].expand(-1, -1, 64))
    torch.testing.assert_close(l_out, ref_l, **TOL)


def _student_and_teacher_step(vit, x, idx, mask_token):
    s_idx, l_idx, t_idx = idx
    cls, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)
    teacher = vit.forward_sparse(x, t_idx)
    dense = vit(x)[0]
    loss = cls.square().mean() + l_out.square().mean() + teacher.square().mean() + dense.mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in vit.named_parameters()}
    return [cls.detach(), l_out.detach(), teacher.detach(), dense.detach()], grads


@pytest.mark.parametrize(
    'compile_cfg', [dict(backend='aot_eager'), True], ids=['aot_eager', 'inductor']
)
def test_compiled_blocks_equal_eager_blocks(compile_cfg):
    """torch.compile of the block calls: same outputs and gradients on every path
    (three sequence lengths, so the dynamic-shape graph is exercised), same
    state-dict keys."""
    x = torch.randn(2, 3, 64, 64)
    idx = random_split(2, 16, 4, 4, seed=2)
    mask_token = torch.randn(1, 1, 64)
    eager = make_vit().train()
    compiled = make_vit(compile=compile_cfg).train()
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())
    outs_e, grads_e = _student_and_teacher_step(eager, x, idx, mask_token)
    outs_c, grads_c = _student_and_teacher_step(compiled, x, idx, mask_token)
    for a, b in zip(outs_c, outs_e):
        torch.testing.assert_close(a, b, **TOL)
    for name in grads_e:
        torch.testing.assert_close(grads_c[name], grads_e[name], **TOL, msg=name)


def test_compile_option_is_validated():
    with pytest.raises(ValueError, match='compile must be a bool or a dict'):
        PerAViT(arch=ARCH, img_size=64, compile='yes')


@pytest.mark.parametrize('registers', [0, 2])
def test_mask_token_scatter_equals_gather_values_and_gradients(registers):
    """The two ``mask_token_insert`` forms: same outputs and gradients (1e-5)."""
    x = torch.randn(3, 3, 64, 64)
    s_idx, l_idx, _ = random_split(3, 16, 5, 6, seed=2)
    results = []
    for insert in ('scatter', 'gather'):
        vit = make_vit(mask_token_insert=insert, num_register_tokens=registers).train()
        mask_token = torch.nn.Parameter(torch.linspace(-1, 1, 64).view(1, 1, 64))
        cls, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)
        (cls.sin().sum() + (l_out * torch.arange(64.0)).square().mean()).backward()
        grads = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
        results.append((cls.detach(), l_out.detach(), mask_token.grad.clone(), grads))
    (cls_a, l_a, m_a, g_a), (cls_b, l_b, m_b, g_b) = results
    torch.testing.assert_close(cls_a, cls_b, **TOL)
    torch.testing.assert_close(l_a, l_b, **TOL)
    torch.testing.assert_close(m_a, m_b, **TOL)
    assert m_a.abs().sum() > 0 and set(g_a) == set(g_b) and len(g_a) > 10
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], **TOL, msg=name)


def test_mask_token_insert_is_validated():
    with pytest.raises(PeraConfigError, match='mask_token_insert must be one of'):
        PerAViT(arch=ARCH, img_size=64, patch_size=16, mask_token_insert='index_put')
