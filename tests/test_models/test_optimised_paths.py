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


def _seeded_step(model_fn, seed=3):
    """Outputs and gradients of ``model_fn()`` (which returns a list of tensors) from one seed."""
    torch.manual_seed(seed)
    outs = model_fn()
    sum((o * torch.linspace(-1, 1, o.shape[-1])).sin().mean() for o in outs).backward()
    return [o.detach() for o in outs]


@pytest.mark.parametrize('with_rope', [False, True])
def test_subset_rows_index_select_equals_advanced_indexing(with_rope):
    """'subset' stochastic depth: index_select rows == x[rows], values and gradients."""
    x0 = torch.randn(6, 9, 64)
    rope = (torch.randn(6, 9, 32), torch.randn(6, 9, 32)) if with_rope else None
    results = []
    for rows in ('index_select', 'advanced'):
        torch.manual_seed(0)
        blk = Block(64, 2, 128, drop_path=0.5, subset_rows=rows).train()
        x = x0.clone().requires_grad_()
        outs = _seeded_step(lambda: [blk(x, rope)])
        grads = {n: p.grad.clone() for n, p in blk.named_parameters()}
        results.append((outs, x.grad.clone(), grads))
    (o_a, x_a, g_a), (o_b, x_b, g_b) = results
    torch.testing.assert_close(o_a[0], o_b[0], **TOL)
    torch.testing.assert_close(x_a, x_b, **TOL)
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], **TOL, msg=name)
    # each branch runs on 3 of 6 rows (its own draw): rows in neither draw pass unchanged
    torch.manual_seed(3)
    touched = set(torch.randperm(6)[:3].tolist()) | set(torch.randperm(6)[:3].tolist())
    unchanged = (o_a[0] == x0).flatten(1).all(1)
    assert unchanged.tolist() == [i not in touched for i in range(6)]


def test_subset_rows_is_validated():
    with pytest.raises(PeraConfigError, match='subset_rows must be one of'):
        Block(64, 2, 128, subset_rows='gather')


def assert_same_step(a, b):
    """Two (outputs, mask-token gradient, parameter gradients) results agree to 1e-5."""
    (o_a, m_a, g_a), (o_b, m_b, g_b) = a, b
    for x, y in zip(o_a, o_b):
        torch.testing.assert_close(x, y, **TOL)
    torch.testing.assert_close(m_a, m_b, **TOL)
    assert set(g_a) == set(g_b) and len(g_a) > 10
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], **TOL, msg=name)


def _pruning_pair(**vit_kwargs):
    vits = [make_vit(prune_last_block=prune, **vit_kwargs).train() for prune in (True, False)]
    vits[1].load_state_dict(vits[0].state_dict())
    return vits


PRUNE_CASES = dict(
    plain=dict(),
    subset_drop_path=dict(drop_path_rate=0.4),
    row_drop_path=dict(drop_path_rate=0.4, drop_path_mode='row'),
    registers_qv_rope=dict(
        num_register_tokens=2, qkv_bias='qv', rope=dict(base=100.0), drop_path_rate=0.4
    ),
)


@pytest.mark.parametrize('case', PRUNE_CASES, ids=list(PRUNE_CASES))
def test_pruned_last_block_equals_full_last_block(case):
    """``prune_last_block``: the cls-only sparse path and the student path give the
    values and gradients of the full last block (same drop-path draws)."""
    x = torch.randn(4, 3, 64, 64)
    s_idx, l_idx, t_idx = random_split(4, 16, 4, 5, seed=4)
    results = []
    for vit in _pruning_pair(**PRUNE_CASES[case]):
        mask_token = torch.nn.Parameter(torch.linspace(-1, 1, 64).view(1, 1, 64))

        def run(vit=vit, mask_token=mask_token):
            cls_s, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)
            cls_t = vit.forward_sparse(x, t_idx, cls_only=True)
            cls_all = vit.forward_sparse(x, None, cls_only=True)
            return [cls_s, l_out, cls_t, cls_all]

        outs = _seeded_step(run)
        grads = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
        results.append((outs, mask_token.grad.clone(), grads))
    assert_same_step(*results)
    # the unpruned cls-only path is the sequence path's cls
    vit = _pruning_pair(**PRUNE_CASES[case])[1].eval()
    torch.testing.assert_close(
        vit.forward_sparse(x, t_idx, cls_only=True), vit.forward_sparse(x, t_idx)[:, 0], **TOL
    )


class _WrappedLinear(torch.nn.Module):
    """A stand-in for a LoRA-style wrapper: not an ``nn.Linear``, same function."""

    def __init__(self, linear):
        super().__init__()
        self.inner = linear

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize('qkv_bias', [True, 'qv'])
def test_attention_queries_equal_full_attention_rows(qkv_bias):
    """``Attention(queries=idx)`` == the rows ``idx`` of full attention, with a plain
    Linear (split q GEMM) and with a wrapped qkv module."""
    from pera_mm.models.utils.attention import Attention

    torch.manual_seed(0)
    attn = Attention(64, 4, qkv_bias=qkv_bias)
    if qkv_bias == 'qv':
        with torch.no_grad():
            attn.q_bias.normal_()
            attn.v_bias.normal_()
    x = torch.randn(3, 10, 64)
    idx = torch.tensor([[0, 4, 7], [0, 1, 9], [0, 5, 5]])
    rope = (torch.randn(1, 10, 16), torch.randn(1, 10, 16))
    full = torch.gather(attn(x, rope), 1, idx[..., None].expand(-1, -1, 64))
    torch.testing.assert_close(attn(x, rope, queries=idx), full, **TOL)
    attn.qkv = _WrappedLinear(attn.qkv)
    torch.testing.assert_close(attn(x, rope, queries=idx), full, **TOL)


@pytest.mark.parametrize('with_bias', [True, False])
@pytest.mark.parametrize('weight_rows', ['whole', 'slice'])
def test_onednn_linear_equals_aten_linear_values_and_gradients(with_bias, weight_rows, monkeypatch):
    from pera_mm.models.utils import onednn_linear as ol

    calls = []
    op = ol._ONEDNN_LINEAR
    monkeypatch.setattr(ol, '_ONEDNN_LINEAR', lambda *a: calls.append(1) or op(*a))
    torch.manual_seed(0)
    w_all, b0 = torch.randn(192, 64) * 0.1, torch.randn(96)
    x0 = torch.randn(5, 3, 64).transpose(0, 1)  # non-contiguous (3, 5, 64)
    results, oneDNN_calls = {}, {}
    for kernel in ol.LINEAR_KERNELS:
        # 'slice': the k/v rows of a fused qkv weight, a view into a parameter
        w_leaf = w_all.clone().requires_grad_()
        w = w_leaf[96:] if weight_rows == 'slice' else w_leaf[:96]
        assert ol.onednn_applies(x0, w)
        x = x0.clone().requires_grad_()
        b = b0.clone().requires_grad_() if with_bias else None
        calls.clear()
        y = ol.linear(x, w, b, kernel)
        (y * torch.linspace(-1, 1, 96)).sin().sum().backward()
        oneDNN_calls[kernel] = len(calls)
        results[kernel] = [y.detach(), x.grad, w_leaf.grad] + ([b.grad] if with_bias else [])
    # forward and input gradient / forward only / none on oneDNN
    assert oneDNN_calls == {'auto': 2, 'auto_forward': 1, 'aten': 0}
    for kernel in ('auto', 'auto_forward'):
        for a, b in zip(results[kernel], results['aten']):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, **TOL)


def test_onednn_linear_outside_autograd_calls_the_op_directly(monkeypatch):
    from pera_mm.models.utils import onednn_linear as ol

    monkeypatch.setattr(ol, '_OneDNNLinear', None)  # any use of the autograd function fails
    x, w, b = torch.randn(3, 5, 16), torch.randn(8, 16), torch.randn(8)
    expected = F.linear(x, w, b)
    with torch.no_grad():
        torch.testing.assert_close(ol.linear(x, w.requires_grad_(), b, 'auto'), expected, **TOL)
    w.requires_grad_(False)
    y = ol.linear(x, w, b, 'auto')  # grad mode on, but nothing needs a gradient (a frozen teacher)
    assert y.grad_fn is None
    torch.testing.assert_close(y, expected, **TOL)
    with pytest.raises(AttributeError):  # a gradient is needed: the autograd function is used
        ol.linear(x, w.requires_grad_(), b, 'auto')


def test_onednn_linear_steps_aside_under_cpu_autocast_and_for_other_dtypes():
    from pera_mm.models.utils.onednn_linear import onednn_applies

    x, w = torch.randn(2, 4, 8), torch.randn(3, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not onednn_applies(x, w)
    assert not onednn_applies(x.double(), w.double())
    assert not onednn_applies(x[:0], w)


def test_block_linear_kernels_agree_and_are_validated():
    x0 = torch.randn(3, 9, 64)
    results = []
    for kernel in ('aten', 'auto', 'auto_forward'):
        torch.manual_seed(0)
        blk = Block(64, 2, 128, qkv_bias='qv', linear_kernel=kernel).train()
        x = x0.clone().requires_grad_()
        outs = _seeded_step(lambda: [blk(x, queries=torch.tensor([[0, 3]] * 3))])
        results.append((outs[0], x.grad, {n: p.grad for n, p in blk.named_parameters()}))
    o_a, x_a, g_a = results[0]
    for o_b, x_b, g_b in results[1:]:
        torch.testing.assert_close(o_b, o_a, **TOL)
        torch.testing.assert_close(x_b, x_a, **TOL)
        for name in g_a:
            torch.testing.assert_close(g_b[name], g_a[name], **TOL, msg=name)
    with pytest.raises(PeraConfigError, match='linear_kernel must be one of'):
        Block(64, 2, 128, linear_kernel='mkl')
    # PerAViT takes oneDNN by default; plain blocks (the other hosts) keep aten
    vit = PerAViT(arch=ARCH, img_size=64, patch_size=16)
    assert {vit.blocks[0].attn.linear_kernel, vit.blocks[-1].mlp.linear_kernel} == {'auto'}
    assert Block(64, 2, 128).mlp.linear_kernel == 'aten'


@pytest.mark.parametrize('head_type', ['PerADINOHead', 'PixelPredictionHead'])
def test_head_linear_kernels_agree_and_are_validated(head_type):
    """Both kernels within 1e-5 of a float64 head, relative to each tensor's scale
    (the normalised bottleneck gives gradients of O(1e3) here)."""
    from pera_mm.models import heads

    cls = getattr(heads, head_type)
    x0 = torch.randn(7, 64)
    dims = dict(hidden_channels=96, bottleneck_channels=32)
    if head_type == 'PerADINOHead':
        dims['out_channels'] = 256
    results = {}
    for kernel, dtype in (
        ('aten', torch.float64),
        ('aten', torch.float32),
        ('auto', torch.float32),
    ):
        torch.manual_seed(0)
        head = cls(64, **dims, linear_kernel=kernel)
        head.init_weights()
        with torch.no_grad():  # prototype norms away from 1
            head.last_layer.weight_g.uniform_(0.5, 2.0)
        head = head.to(dtype)
        x = x0.to(dtype, copy=True).requires_grad_()
        y = head(x)
        (y * torch.linspace(-1, 1, y.shape[-1], dtype=dtype)).sin().sum().backward()
        results[kernel, dtype] = [y.detach(), x.grad] + [p.grad for p in head.parameters()]
    reference = results.pop(('aten', torch.float64))
    assert len(reference) == 2 + 6 + 2  # 3 linears (w, b) + weight_g, weight_v
    for form, tensors in results.items():
        for i, (a, ref) in enumerate(zip(tensors, reference)):
            scale = ref.abs().max()
            assert scale > 0
            err = (a.double() - ref).abs().max()
            assert err <= 1e-5 * scale, (form, i, float(err), float(scale))
    assert cls(64).linear_kernel == 'auto'
    with pytest.raises(PeraConfigError, match='linear_kernel must be one of'):
        cls(64, linear_kernel='mkl')


@pytest.mark.parametrize('case', ['plain', 'registers_rope'])
def test_sparse_embed_equals_full_grid_convolution(case, monkeypatch):
    """``sparse_embed``: the kept patches' GEMM == the whole-grid convolution then a
    gather, for values and every gradient, on a non-square grid (3 x 4 patches)."""
    kwargs = dict(num_register_tokens=2, rope=dict(base=100.0)) if case != 'plain' else {}
    vits = [make_vit(sparse_embed=sparse, **kwargs).train() for sparse in (True, False)]
    vits[1].load_state_dict(vits[0].state_dict())
    x = torch.randn(3, 3, 48, 64)
    s_idx, l_idx, t_idx = random_split(3, 12, 3, 4, seed=5)
    results = []
    for vit in vits:
        mask_token = torch.nn.Parameter(torch.linspace(-1, 1, 64).view(1, 1, 64))

        def run(vit=vit, mask_token=mask_token):
            cls_s, l_out = vit.forward_student(x, s_idx, l_idx, mask_token)
            return [cls_s, l_out, vit.forward_sparse(x, t_idx), vit.embed(x, t_idx)[1]]

        outs = _seeded_step(run)
        grads = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
        results.append((outs, grads))
    (o_a, g_a), (o_b, g_b) = results
    for a, b in zip(o_a, o_b):
        torch.testing.assert_close(a, b, **TOL)
    assert {'patch_embed.proj.weight', 'patch_embed.proj.bias', 'pos_embed'} <= set(g_a)
    assert set(g_a) == set(g_b)
    for name in g_a:
        torch.testing.assert_close(g_a[name], g_b[name], **TOL, msg=name)
    # the sparse paths never run the convolution; every patch still does
    vit = vits[0]

    def no_conv(*args):
        raise AssertionError('the whole-grid convolution ran')

    monkeypatch.setattr(vit.patch_embed.proj, 'forward', no_conv)
    vit.forward_sparse(x, t_idx, cls_only=True)
    with pytest.raises(AssertionError, match='whole-grid convolution ran'):
        vit.forward_sparse(x, torch.arange(12).expand(3, -1))


@pytest.fixture
def sdpa_calls(monkeypatch):
    """A list that grows by one at every call of ``F.scaled_dot_product_attention``."""
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, 'scaled_dot_product_attention', lambda *a: calls.append(1) or sdpa(*a))
    return calls


@pytest.mark.parametrize('n_keys', [8, 64, 65])
def test_explicit_attention_equals_sdpa_values_and_gradients(n_keys, sdpa_calls):
    """'auto' attention: explicit softmax up to 64 keys, SDPA beyond; same values
    and gradients (queries fewer than keys, as in the pruned last block)."""
    from pera_mm.models.utils import attention

    g = torch.Generator().manual_seed(6)
    q0, k0, v0 = (torch.randn(3, 2, n, 32, generator=g) for n in (5, n_keys, n_keys))
    results, counts = {}, {}
    for kernel in attention.ATTENTION_KERNELS:
        q, k, v = (t.clone().requires_grad_() for t in (q0, k0, v0))
        sdpa_calls.clear()
        out = attention.attend(q, k, v, kernel)
        counts[kernel] = len(sdpa_calls)
        (out * torch.linspace(-1, 1, 32)).sin().sum().backward()
        results[kernel] = [out.detach(), q.grad, k.grad, v.grad]
    assert counts == {'auto': int(n_keys > attention.EXPLICIT_MAX_KEYS), 'sdpa': 1}
    for a, b in zip(results['auto'], results['sdpa']):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL)


def test_attention_kernel_defaults_fallbacks_and_validation(sdpa_calls):
    from pera_mm.models.utils import attention

    q = torch.randn(2, 2, 8, 16)
    attention.attend(q.double(), q.double(), q.double(), 'auto')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        attention.attend(q, q, q, 'auto')
    assert len(sdpa_calls) == 2  # other dtypes and CPU autocast keep SDPA
    vit = PerAViT(arch=ARCH, img_size=64, patch_size=16)
    assert {blk.attn.attention_kernel for blk in vit.blocks} == {'auto'}
    assert Block(64, 2, 128).attn.attention_kernel == 'sdpa'
    with pytest.raises(PeraConfigError, match='attention_kernel must be one of'):
        Block(64, 2, 128, attention_kernel='flash')


@pytest.fixture
def randperm_per_size(monkeypatch):
    """``torch.randperm`` drawing from one generator per size: a sequence of batch B gets
    the same rows whether its blocks run alone or packed with another (``reset()``)."""
    real, gens = torch.randperm, {}

    def randperm(n, device=None, **kwargs):
        return real(
            n, generator=gens.setdefault(n, torch.Generator().manual_seed(n)), device=device
        )

    monkeypatch.setattr(torch, 'randperm', randperm)
    return gens.clear


PACK_CASES = dict(
    plain=dict(),
    subset_drop_path=dict(drop_path_rate=0.4),
    unpruned=dict(drop_path_rate=0.4, prune_last_block=False),
    registers_qv_rope=dict(
        num_register_tokens=2, qkv_bias='qv', rope=dict(base=100.0), drop_path_rate=0.4
    ),
    checkpointed=dict(drop_path_rate=0.4, with_cp=True),
)


@pytest.mark.parametrize('case', PACK_CASES, ids=list(PACK_CASES))
def test_packed_crops_equal_separate_student_paths(case, randperm_per_size, monkeypatch):
    """``pack_crops``: the student's global and local crops through shared block calls
    give the values and gradients of the two separate paths (same drop-path rows)."""
    x, x_loc = torch.randn(3, 3, 64, 64), torch.randn(5, 3, 32, 32)
    s_idx, l_idx, _ = random_split(3, 16, 4, 5, seed=5)
    loc_idx = random_split(5, 4, 3, 0, seed=6)[0]
    calls = {'forward': 0, 'forward_groups': 0}
    for name in calls:
        method = getattr(Block, name)

        def counted(self, *a, _name=name, _method=method, **k):
            calls[_name] += 1
            return _method(self, *a, **k)

        monkeypatch.setattr(Block, name, counted)
    results = []
    for pack in (True, False):
        vit = make_vit(pack_crops=pack, **PACK_CASES[case]).train()
        mask_token = torch.nn.Parameter(torch.linspace(-1, 1, 64).view(1, 1, 64))
        randperm_per_size()
        for name in calls:
            calls[name] = 0
        outs = _seeded_step(
            lambda vit=vit, m=mask_token: list(
                vit.forward_student(x, s_idx, l_idx, m, local_x=x_loc, local_idx=loc_idx)
            )
        )
        grads = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
        results.append(((outs, mask_token.grad.clone(), grads), dict(calls)))
    (packed, c_a), (separate, c_b) = results
    # packed: one module call of each block for both crop sets; separate: one per set
    # (checkpointing calls every block once more in the backward)
    n = ARCH['num_layers'] * (2 if PACK_CASES[case].get('with_cp') else 1)
    assert c_a == {'forward': n, 'forward_groups': n}
    assert c_b == {'forward': 2 * n, 'forward_groups': 0}
    assert [o.shape for o in packed[0]] == [(3, 64), (3, 5, 64), (5, 64)]
    assert_same_step(packed, separate)
    # the local crops' cls is the cls-only sparse path's
    vit = make_vit(**PACK_CASES[case]).eval()
    torch.testing.assert_close(
        vit.forward_student(x, s_idx, l_idx, mask_token, local_x=x_loc, local_idx=loc_idx)[2],
        vit.forward_sparse(x_loc, loc_idx, cls_only=True),
        **TOL,
    )


def test_packed_crops_stay_separate_with_compiled_blocks(monkeypatch):
    vit = make_vit(compile=dict(backend='eager'))
    monkeypatch.setattr(Block, 'forward_groups', None)  # any packed call would fail
    x, x_loc = torch.randn(2, 3, 64, 64), torch.randn(3, 3, 32, 32)
    s_idx, l_idx, _ = random_split(2, 16, 4, 5)
    cls, l_out, cls_loc = vit.forward_student(x, s_idx, l_idx, torch.zeros(1, 1, 64), x_loc)
    assert cls.shape == (2, 64) and l_out.shape == (2, 5, 64) and cls_loc.shape == (3, 64)
