"""timm ViT / DINOv2 / DINOv3 weights converted to PerAViT give timm's features (1e-5).

Every model is built at full width and depth from timm's own definition
(offline, ``pretrained=False``), with random O(1) LayerScale gammas, norms and
biases. Inputs are small (4x4 and 3x5 patch grids) to keep the CPU budget: the
"native" size is the size the timm model is built for (its position table has
that grid, so no resize), the other size goes through timm's
``dynamic_img_size`` resize and ours. The ViT-L models are in
``test_public_weights_timm_large.py``.
"""

import pytest
import torch

from .public_weights_helpers import assert_same_features, converted_pera_vit, random_timm_model

# name -> (patch, expected layout facts)
MODELS = {
    'vit_small_patch16_224': dict(pos_embed_layout='cls_slot', num_register_tokens=0),
    'vit_base_patch16_224': dict(pos_embed_layout='cls_slot', num_register_tokens=0),
    'vit_small_patch14_dinov2': dict(pos_embed_layout='cls_slot', layer_scale_init_value=1e-5),
    'vit_base_patch14_dinov2': dict(pos_embed_layout='cls_slot', layer_scale_init_value=1e-5),
    'vit_small_patch14_reg4_dinov2': dict(pos_embed_layout='patch_only', num_register_tokens=4),
    'vit_base_patch14_reg4_dinov2': dict(pos_embed_layout='patch_only', num_register_tokens=4),
    'vit_small_patch16_dinov3': dict(pos_embed_layout='none', num_register_tokens=4, norm_eps=1e-5),
    'vit_small_plus_patch16_dinov3': dict(pos_embed_layout='none', mlp_type='swiglu'),
    'vit_base_patch16_dinov3': dict(pos_embed_layout='none', num_register_tokens=4),
}


@pytest.mark.parametrize('name', list(MODELS))
def test_timm_model_converts_and_matches_features(name):
    patch = 14 if 'patch14' in name else 16
    model = random_timm_model(name, img_size=4 * patch)
    vit, report = converted_pera_vit(model.state_dict())
    assert report['missing'] == [] and report['unexpected'] == []
    for key, value in MODELS[name].items():
        assert report['cfg'][key] == value, key
    assert vit.arch_settings['num_layers'] == len(model.blocks)
    assert vit.embed_dims == model.embed_dim
    assert sum(p.numel() for p in vit.parameters()) == sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith('head.')
    )
    assert_same_features(model, vit, (4 * patch, 4 * patch), batch=2)  # native
    assert_same_features(model, vit, (3 * patch, 5 * patch))  # another size


def test_dinov3_rope_is_what_makes_the_match():
    """Without RoPE the converted DINOv3 port differs: the test sees the positions."""
    model = random_timm_model('vit_small_patch16_dinov3', img_size=64)
    vit, _ = converted_pera_vit(model.state_dict())
    vit.rope.base = 10000.0
    with pytest.raises(AssertionError):
        assert_same_features(model, vit, (64, 64))


def test_native_dinov2_table_resized_like_timm():
    """The real 37x37 DINOv2 table (518 px, a cls slot) at a 4x4 input: timm's
    antialiased resize; the register model's patch-only table likewise
    (depth-truncated copies: the resize happens before the blocks)."""
    for name in ('vit_small_patch14_dinov2', 'vit_small_patch14_reg4_dinov2'):
        model = random_timm_model(name, img_size=518, depth=2)
        vit, report = converted_pera_vit(model.state_dict())
        assert report['cfg']['img_size'] == 518 and vit.grid_size == (37, 37)
        assert_same_features(model, vit, (56, 56))
        assert_same_features(model, vit, (42, 70))


def test_position_table_resized_to_the_target_grid():
    """Converting for another img_size resizes the table once (reported), with
    timm's convention: the converted model at its new native size == timm at it."""
    model = random_timm_model('vit_small_patch16_224', img_size=224, depth=2)
    vit, report = converted_pera_vit(model.state_dict(), img_size=64)
    assert report['reshaped'] == {'pos_embed': '(1, 197, 384) -> (1, 17, 384)'}
    assert vit.pos_embed.shape == (1, 17, 384)
    assert_same_features(model, vit, (64, 64))
    assert torch.equal(vit.pos_embed_for((4, 4)), vit.pos_embed)
