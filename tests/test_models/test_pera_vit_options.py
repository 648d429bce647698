"""PerAViT options for public weights: registers, LayerNorm eps, q / v bias,
SwiGLU, position layouts and resize conventions; defaults leave PerAViT as it was."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from timm.layers import SwiGLU, resample_abs_pos_embed

from pera_mm.models.backbones import PerAViT
from pera_mm.models.utils import Block
from pera_mm.models.utils.attention import Attention
from pera_mm.models.utils.swiglu import SwiGLUMlp
from pera_mm.utils.checkpoint_convert import is_vit_key
from pera_mm.utils.errors import PeraConfigError

ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=96)
TOL = dict(atol=1e-5, rtol=1e-5)


def build(**kwargs):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = PerAViT(**dict(dict(arch=ARCH, img_size=64, patch_size=16), **kwargs))
    vit.init_weights()
    return vit.eval()


def test_defaults_keep_the_old_parameters_and_names():
    vit = build(layer_scale_init_value=0.1)
    keys = list(vit.state_dict())
    assert all(is_vit_key(k) for k in keys)
    assert vit.pos_embed.shape == (1, 17, 64) and vit.register_tokens is None
    assert vit.rope is None and vit.num_prefix_tokens == 1
    assert all(m.eps == 1e-6 for m in vit.modules() if isinstance(m, torch.nn.LayerNorm))
    assert 'blocks.0.attn.qkv.bias' in keys and 'blocks.0.mlp.fc1.weight' in keys


def test_qv_bias_has_no_k_bias_and_computes_with_a_zero_one():
    attn = Attention(64, 2, qkv_bias='qv')
    assert attn.qkv.bias is None and {'q_bias', 'v_bias'} <= dict(attn.named_parameters()).keys()
    torch.nn.init.normal_(attn.q_bias)
    torch.nn.init.normal_(attn.v_bias)
    x = torch.randn(2, 5, 64)
    bias = torch.cat([attn.q_bias, torch.zeros(64), attn.v_bias])
    torch.testing.assert_close(attn.qkv_projection(x), x @ attn.qkv.weight.T + bias)
    q, k, v = (x @ attn.qkv.weight.T + bias).reshape(2, 5, 3, 2, 32).permute(2, 0, 3, 1, 4)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 64)
    torch.testing.assert_close(attn(x), attn.proj(ref), **TOL)
    with pytest.raises(PeraConfigError, match="qkv_bias must be one of .*'qv'.*got 'qk'"):
        Attention(64, 2, qkv_bias='qk')


def test_norm_eps_reaches_every_layernorm():
    vit = build(norm_eps=1e-5)
    norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 and all(m.eps == 1e-5 for m in norms)


def test_swiglu_mlp_is_the_gated_product():
    torch.manual_seed(0)
    ours = SwiGLUMlp(64, 96)
    theirs = SwiGLU(64, 96)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 7, 64)
    by_hand = ours.fc2(F.silu(ours.fc1_g(x)) * ours.fc1_x(x))
    torch.testing.assert_close(ours(x), by_hand)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)
    blk = Block(64, 2, 96, mlp_type='swiglu')
    assert isinstance(blk.mlp, SwiGLUMlp) and blk.mlp.fc1_g.out_features == 96
    with pytest.raises(PeraConfigError, match="mlp_type must be one of .*got 'geglu'"):
        Block(64, 2, 96, mlp_type='geglu')


def test_register_tokens_follow_cls_without_position():
    for layout in ('cls_slot', 'patch_only'):
        vit = build(num_register_tokens=3, pos_embed_layout=layout)
        torch.nn.init.normal_(vit.register_tokens)
        x = torch.randn(2, 3, 64, 64)
        prefix, patches, pos = vit.embed(x)
        assert prefix.shape == (2, 4, 64) and patches.shape == (2, 16, 64)
        torch.testing.assert_close(prefix[:, 1:], vit.register_tokens.expand(2, -1, -1))
        slot = vit.pos_embed[:, :1] if layout == 'cls_slot' else 0
        torch.testing.assert_close(prefix[:, :1], (vit.cls_token + slot).expand(2, -1, -1))
        assert vit.pos_embed.shape == (1, 16 + (layout == 'cls_slot'), 64)
        assert vit.forward_sparse(x).shape == (2, 17, 64)  # registers not returned
        cls, registers, out = vit.forward_features(x)
        assert registers.shape == (2, 3, 64)
        vit.out_type = 'raw'
        assert vit(x)[0].shape == (2, 20, 64)
        vit.out_type = 'featmap'
        torch.testing.assert_close(vit(x)[0].flatten(2).transpose(1, 2), out, **TOL)


def test_resize_conventions_follow_their_sources():
    """'antialias' == timm's resample_abs_pos_embed; 'offset' == DINOv2's
    scale_factor (dst + 0.1) / src bicubic; shrinking 4x4 -> 3x3 they differ."""
    anti = build(pos_embed_layout='patch_only', pos_resize='antialias')
    torch.testing.assert_close(
        anti.pos_embed_for((3, 3)),
        resample_abs_pos_embed(anti.pos_embed, (3, 3), (4, 4), num_prefix_tokens=0),
    )
    off = build(pos_resize='offset', interpolate_offset=0.1)
    grid = off.pos_embed[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, scale_factor=(3.1 / 4, 3.1 / 4), mode='bicubic')
    torch.testing.assert_close(off.pos_embed_for((3, 3))[:, 1:], ref.flatten(2).transpose(1, 2))
    off.pos_embed.data.copy_(F.pad(anti.pos_embed.data, (0, 0, 1, 0)))
    assert not torch.allclose(off.pos_embed_for((3, 3))[:, 1:], anti.pos_embed_for((3, 3)))


def test_checkpoint_table_of_another_grid_is_resized_per_layout():
    small = build(pos_embed_layout='patch_only', img_size=32)
    big = build(pos_embed_layout='patch_only', img_size=64, pos_resize='antialias')
    big.load_state_dict(small.state_dict())
    ref = resample_abs_pos_embed(small.pos_embed, (4, 4), (2, 2), num_prefix_tokens=0)
    torch.testing.assert_close(big.pos_embed, ref)


def test_rope_only_model_has_no_table_and_freezes():
    vit = build(
        pos_embed_layout='none', rope=dict(base=100), num_register_tokens=2, frozen_stages=1
    )
    assert vit.pos_embed is None and 'pos_embed' not in vit.state_dict()
    assert not vit.register_tokens.requires_grad and not vit.cls_token.requires_grad
    assert vit.get_layer_depth('backbone.register_tokens', 'backbone.') == (0, 4)
    assert vit(torch.randn(1, 3, 48, 80))[0].shape == (1, 64)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(pos_embed_layout='none'), "pos_embed_layout='none' needs rope"),
        (dict(pos_embed_layout='sincos'), 'pos_embed_layout must be one of'),
        (dict(pos_resize='bilinear'), "pos_resize must be one of \\('offset', 'antialias'\\)"),
        (dict(num_register_tokens=-1), 'num_register_tokens must be an int >= 0'),
        (dict(rope=dict(base=100), arch=dict(ARCH, num_heads=32)), 'divisible by 4'),
        (dict(rope=[100]), 'rope must be None or a dict'),
    ],
)
def test_bad_options_fail_with_one_line(kwargs, message):
    with pytest.raises(PeraConfigError, match=message):
        build(**kwargs)
