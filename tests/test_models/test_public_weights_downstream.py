"""Converted public weights (DINOv2 layout) load into the downstream models.

A small timm ViT with the DINOv2 ViT-S/14 layout (LayerScale, a learned
position table with a cls slot; 64 wide, 4 blocks, built offline with
``pretrained=False`` and random O(1) 1-D tensors) is converted for 16 px
patches (FlexiViT resize) at 64 px and loaded through ``init_cfg`` into the
ViT-Adapter of UperNet, the scene classifier's ``PerAViT`` and BIT's
change-detection encoder, each from its CPU smoke config: every ViT tensor of
the backbone equals the converted one (zero missing), the rest of the
checkpoint is what the model has no place for.
"""

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.checkpoint_convert import is_vit_key
from pera_mm.utils.public_weights import convert_public_weights

# timm's DINOv2 ViT-S/14 definition at the smoke configs' ViT-Tiny size (MLP ratio 4)
TINY = dict(embed_dim=64, depth=4, num_heads=2)
ARCH = dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=256)
CONFIGS = {
    'adapter': (
        'configs/segmentation/upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py',
        'mmseg',
    ),
    'scene_classifier': (
        'configs/scene_classification/pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py',
        'mmpretrain',
    ),
    'change_detection': (
        'configs/change_detection/bit_pera-vit-tiny-p16_1xb2-3iter_levir-cd-64x64_cpu-smoke.py',
        'mmseg',
    ),
}


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model('vit_small_patch14_dinov2', pretrained=False, img_size=56, **TINY)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(0, 1)
    weights, report = convert_public_weights(
        model.state_dict(), 'timm', cfg_overrides=dict(patch_size=16, img_size=64)
    )
    assert report['reshaped'] == {'patch_embed.proj.weight': '(64, 3, 14, 14) -> (64, 3, 16, 16)'}
    path = tmp_path_factory.mktemp('downstream') / 'dinov2_tiny_pera.pth'
    torch.save(dict(state_dict=weights, meta=dict(pera_vit=report['cfg'])), path)
    return weights, report['cfg'], path


def build_backbone(config, scope, cfg, path):
    """The smoke config's model with the converted ViT's arch, initialised from ``path``."""
    from mmengine.registry import MODELS as ROOT

    c = Config.fromfile(REPO_ROOT / config)
    c.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(
                    arch=ARCH,
                    layer_scale_init_value=cfg['layer_scale_init_value'],
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)),
                )
            )
        )
    )
    with DefaultScope.overwrite_default_scope(scope):
        model = ROOT.build(c.model)
        model.init_weights()
    return model.backbone


@pytest.mark.parametrize('name', list(CONFIGS))
def test_converted_dinov2_loads_with_zero_missing_vit_keys(name, converted):
    weights, cfg, path = converted
    assert cfg['pos_embed_layout'] == 'cls_slot' and cfg['layer_scale_init_value'] == 1e-5
    backbone = build_backbone(*CONFIGS[name], cfg, path)
    own = backbone.state_dict()
    vit_keys = [k for k in own if is_vit_key(k)]
    missing = [k for k in vit_keys if k not in weights]
    assert missing == []
    for key in vit_keys:
        value = weights[key]
        if key == 'pos_embed' and own[key].shape != value.shape:
            value = value[:, 1:]  # the adapter keeps the patch part of the table
        assert torch.equal(own[key], value), key
    # LayerScale and the resized 16 px patch embedding are among them
    assert 'blocks.3.ls2.gamma' in vit_keys and own['patch_embed.proj.weight'].shape[-1] == 16
    not_loaded = sorted(set(weights) - set(vit_keys))
    assert not_loaded == ([] if name != 'adapter' else ['cls_token', 'norm.bias', 'norm.weight'])
