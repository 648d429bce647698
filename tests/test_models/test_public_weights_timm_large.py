"""The ViT-L models of timm (DINOv2 and DINOv3 ports) converted to PerAViT.

Full width and depth (24 blocks, 1024 wide) at small inputs; see
``test_public_weights_timm.py`` for the method.
"""

import pytest

from .public_weights_helpers import assert_same_features, converted_pera_vit, random_timm_model


@pytest.mark.parametrize('name', ['vit_large_patch14_dinov2', 'vit_large_patch16_dinov3'])
def test_large_timm_model_converts_and_matches_features(name):
    patch = 14 if 'patch14' in name else 16
    model = random_timm_model(name, img_size=4 * patch)
    vit, report = converted_pera_vit(model.state_dict())
    assert report['missing'] == [] and report['unexpected'] == []
    assert report['cfg']['arch'] == dict(
        embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096
    )
    assert_same_features(model, vit, (4 * patch, 4 * patch))
    assert_same_features(model, vit, (3 * patch, 2 * patch))
