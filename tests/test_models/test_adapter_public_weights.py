"""Converted public weights of every layout in ``PerAViTAdapter``, the scene classifier and
the change-detection encoder.

The timm sources are timm's own definitions built offline (``pretrained=False``) at a
small size (64 wide, 4 blocks, one 64-wide head), with random O(1) LayerScale gammas,
norms, biases and tokens (``random_timm_model``). The official DINOv2 / DINOv3 sources
are checkpoints generated from the key-and-shape manifests; MMPretrain's layout is a
``PerAViT`` renamed by ``pera_vit_to_mmpretrain``.

- every layout loads into the adapter with zero missing ViT keys and the converted
  values (the checkpoint's final ``norm`` is the only thing left unused);
- with the injectors' ``gamma`` at 0 the adapter's token stream after the last slice
  equals ``PerAViT``'s pre-norm tokens (cls, registers, patches) on the same weights
  (1e-5), for DINOv2-reg4 (patch 14: the adapter's bilinear input resize, a patch-only
  table with timm's antialiased resize; the official layout: a cls slot and the 0.1
  offset) and DINOv3 (RoPE on the adapter's grid, q/v bias, registers, LayerScale,
  eps 1e-5, the SwiGLU ViT-S+; timm's port and the official layout), at two sizes;
- a checkpoint of another form (registers, q/v bias) is a one-line error;
- the scene classifier and BIT's encoder (``PerAViT``) take the same checkpoints.
"""

import logging

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401
from pera_mm.models.backbones import PerAViT, PerAViTAdapter
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.backbone_checkpoint import load_vit_checkpoint
from pera_mm.utils.checkpoint_convert import is_vit_key, pera_vit_to_mmpretrain
from pera_mm.utils.errors import PeraConfigError, PeraDataError
from pera_mm.utils.public_weights import convert_public_weights

from .public_weights_helpers import TOL, checkpoint_from_manifest, random_timm_model

SMALL = dict(embed_dim=64, depth=4, num_heads=1)
#: source -> (timm model, the image size it is built for: a 4 x 4 grid, extra arguments)
TIMM_SOURCES = {
    'vit_small_patch16_224': ('vit_small_patch16_224', 64, {}),
    'vit_small_patch14_dinov2': ('vit_small_patch14_dinov2', 56, {}),
    'vit_small_patch14_reg4_dinov2': ('vit_small_patch14_reg4_dinov2', 56, {}),
    'vit_small_patch16_dinov3': ('vit_small_patch16_dinov3', 64, {}),
    # timm's q/v-bias form of the port (the official DINOv3 weights have q and v biases)
    'vit_small_patch16_dinov3_qkvb': ('vit_small_patch16_dinov3', 64, dict(qkv_bias=True)),
    'vit_small_plus_patch16_dinov3': ('vit_small_plus_patch16_dinov3', 64, {}),
}
#: official checkpoint (from its manifest) -> layout
OFFICIAL_SOURCES = {
    'dinov2_vits14': 'dinov2',
    'dinov2_vits14_reg': 'dinov2',
    'dinov3_vits16plus': 'dinov3',
}
CLASSIFIER = 'configs/scene_classification/pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py'
BIT = 'configs/change_detection/bit_pera-vit-tiny-p16_1xb2-3iter_levir-cd-64x64_cpu-smoke.py'


def _quiet(fn, *args, **kwargs):
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)


def source_state_dict(name):
    """The source checkpoint (flat) and its layout."""
    if name in TIMM_SOURCES:
        timm_name, img_size, extra = TIMM_SOURCES[name]
        model = random_timm_model(timm_name, img_size=img_size, **SMALL, **extra)
        return model.state_dict(), 'timm'
    if name in OFFICIAL_SOURCES:
        torch.manual_seed(0)
        ckpt = checkpoint_from_manifest(name, real=True)
        for key, value in ckpt.items():  # matrices N(0, 0.02) as in random_timm_model
            if value.dim() >= 2 and 'token' not in key and 'pos_embed' not in key:
                value.mul_(0.02)
        return ckpt, OFFICIAL_SOURCES[name]
    assert name == 'mmpretrain'
    torch.manual_seed(0)
    arch = dict(embed_dims=64, num_layers=4, num_heads=1, feedforward_channels=256)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = PerAViT(arch=arch, img_size=64, layer_scale_init_value=0.1)
    for p in vit.parameters():
        torch.nn.init.normal_(p, std=0.02 if p.dim() > 1 else 1.0)
    renamed = pera_vit_to_mmpretrain(vit.state_dict())
    return {f'backbone.{k}': v for k, v in renamed.items()}, 'mmpretrain'


def adapter_kwargs(cfg, **extra):
    """``PerAViTAdapter`` arguments of a converter's ``meta['pera_vit']``."""
    kwargs = {k: v for k, v in cfg.items() if k != 'img_size'}
    kwargs.update(pretrain_size=cfg['img_size'], deform_num_heads=4)
    depth = cfg['arch']['num_layers']
    if depth == 4:
        kwargs['interaction_indexes'] = [[i, i] for i in range(4)]
    kwargs.update(extra)
    return kwargs


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """name -> (converted weights, meta['pera_vit'], path of the saved .pth)."""
    root = tmp_path_factory.mktemp('adapter_public')
    out = {}
    for name in [*TIMM_SOURCES, *OFFICIAL_SOURCES, 'mmpretrain']:
        state_dict, layout = source_state_dict(name)
        weights, report = convert_public_weights(state_dict, layout)
        assert report['missing'] == [] and report['unexpected'] == []
        path = root / f'{name}_pera.pth'
        torch.save(dict(state_dict=weights, meta=dict(pera_vit=report['cfg'])), path)
        out[name] = (weights, report['cfg'], path)
    return out


def build_adapter(cfg, **extra):
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = PerAViTAdapter(**adapter_kwargs(cfg, **extra))
    _quiet(model.init_weights)
    return model.eval()


@pytest.mark.parametrize('name', [*TIMM_SOURCES, *OFFICIAL_SOURCES, 'mmpretrain'])
def test_every_layout_loads_into_the_adapter_with_zero_missing_vit_keys(name, converted):
    weights, cfg, path = converted[name]
    adapter = build_adapter(cfg)
    report = _quiet(load_vit_checkpoint, adapter, str(path))
    own = adapter.state_dict()
    vit_keys = [k for k in own if is_vit_key(k)]
    assert [k for k in report['missing'] if is_vit_key(k)] == []
    assert sorted(report['loaded']) == sorted(vit_keys)
    for key in vit_keys:
        assert torch.equal(own[key], weights[key]), key
    registers = cfg['num_register_tokens']
    unused = ['norm.weight', 'norm.bias'] + ([] if registers else ['cls_token'])
    assert sorted(report['unexpected']) == sorted(unused)
    # the options really are in the adapter's ViT
    assert ('register_tokens' in own) == bool(registers)
    assert ('pos_embed' in own) == (cfg['pos_embed_layout'] != 'none')
    assert ('blocks.0.attn.q_bias' in own) == (cfg['qkv_bias'] == 'qv')
    assert ('blocks.0.mlp.fc1_g.weight' in own) == (cfg['mlp_type'] == 'swiglu')
    assert adapter.blocks[0].norm1.eps == cfg['norm_eps']


def _last_slice_tokens(adapter, x):
    """The token stream after the adapter's last ViT slice (cls, registers, patches)."""
    seen = {}
    hook = adapter.interactions[-1].register_forward_hook(
        lambda module, args, output: seen.update(tokens=output[0])
    )
    try:
        with torch.no_grad():
            adapter(x)
    finally:
        hook.remove()
    return seen['tokens']


def _pera_vit_tokens(weights, cfg, x_vit):
    """PerAViT's pre-norm token sequence on the converted weights."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = PerAViT(**cfg, out_type='raw', final_norm=False).eval()
    vit.load_state_dict(weights, strict=True)
    with torch.no_grad():
        return vit(x_vit)[0]


@pytest.mark.parametrize(
    'name, size',
    [
        ('vit_small_patch14_reg4_dinov2', (64, 64)),
        ('vit_small_patch14_reg4_dinov2', (64, 96)),
        ('vit_small_patch16_dinov3', (64, 64)),
        ('vit_small_patch16_dinov3_qkvb', (96, 64)),
        ('vit_small_plus_patch16_dinov3', (64, 96)),
        ('dinov3_vits16plus', (64, 64)),
        ('dinov2_vits14_reg', (64, 96)),
    ],
)
def test_adapter_vit_path_equals_pera_vit(name, size, converted):
    weights, cfg, path = converted[name]
    adapter = build_adapter(cfg, init_values=0.0)
    _quiet(load_vit_checkpoint, adapter, str(path))
    assert all(not layer.injector.gamma.any() for layer in adapter.interactions)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
    h, w = size[0] // 16, size[1] // 16
    p = cfg['patch_size']
    x_vit = x if p == 16 else F.interpolate(x, size=(h * p, w * p), mode='bilinear')
    ref = _pera_vit_tokens(weights, cfg, x_vit)
    got = _last_slice_tokens(adapter, x)
    C = cfg['arch']['embed_dims']
    assert got.shape == (2, 1 + cfg['num_register_tokens'] + h * w, C) == ref.shape
    torch.testing.assert_close(got, ref, **TOL)
    # the comparison sees the injectors: switched on, the stream moves away
    for layer in adapter.interactions:
        torch.nn.init.ones_(layer.injector.gamma)
    assert (_last_slice_tokens(adapter, x) - ref).abs().max() > 1e-2


def test_cls_token_option_without_registers(converted):
    """DINOv2 without registers: patches alone by default (ViT-Adapter), or with the
    cls token beside them (BEiT-Adapter style), then the same stream as PerAViT."""
    weights, cfg, path = converted['vit_small_patch14_dinov2']
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    x_vit = F.interpolate(x, size=(56, 56), mode='bilinear')
    ref = _pera_vit_tokens(weights, cfg, x_vit)
    plain = build_adapter(cfg)
    assert not plain.with_cls_token and _last_slice_tokens(plain, x).shape[1] == 16
    adapter = build_adapter(cfg, init_values=0.0, with_cls_token=True)
    report = _quiet(load_vit_checkpoint, adapter, str(path))
    assert 'cls_token' in report['loaded']
    torch.testing.assert_close(_last_slice_tokens(adapter, x), ref, **TOL)


def test_adapter_feature_maps_and_gradients_with_rope_and_registers(converted):
    weights, cfg, path = converted['vit_small_patch16_dinov3_qkvb']
    adapter = build_adapter(cfg)
    _quiet(load_vit_checkpoint, adapter, str(path))
    adapter.train()
    feats = adapter(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, 64, 16, 24),
        (2, 64, 8, 12),
        (2, 64, 4, 6),
        (2, 64, 2, 3),
    ]
    sum(f.square().mean() for f in feats).backward()
    for name in ('register_tokens', 'cls_token', 'blocks.0.attn.q_bias', 'blocks.3.ls2.gamma'):
        grad = adapter.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_frozen_stages_freeze_the_prefix_tokens(converted):
    _, cfg, _ = converted['vit_small_patch16_dinov3_qkvb']
    adapter = build_adapter(cfg, frozen_stages=4)
    frozen = {n for n, p in adapter.named_parameters() if not p.requires_grad}
    assert {'cls_token', 'register_tokens', 'blocks.3.attn.q_bias'} <= frozen
    assert 'level_embed' not in frozen


def test_registers_without_the_cls_token_are_refused(converted):
    _, cfg, _ = converted['vit_small_patch14_reg4_dinov2']
    with pytest.raises(PeraConfigError, match='register tokens run beside the cls token'):
        build_adapter(cfg, with_cls_token=False)


@pytest.mark.parametrize(
    'source, wrong, message',
    [
        ('vit_small_patch14_reg4_dinov2', dict(num_register_tokens=0), 'register_tokens'),
        ('dinov3_vits16plus', dict(qkv_bias=True), r'blocks\.0\.attn\.qkv\.bias'),
    ],
)
def test_a_checkpoint_of_another_form_is_a_one_line_error(source, wrong, message, converted):
    _, cfg, path = converted[source]
    adapter = build_adapter(cfg, **wrong)
    with pytest.raises(PeraDataError, match=message) as info:
        _quiet(load_vit_checkpoint, adapter, str(path))
    assert '\n' not in str(info.value)


def _downstream_backbone(config, scope, cfg, path):
    from mmengine.registry import MODELS as ROOT

    c = Config.fromfile(REPO_ROOT / config)
    options = {k: v for k, v in cfg.items() if k != 'arch'}
    c.merge_from_dict(
        dict(
            model=dict(
                backbone=dict(
                    arch=dict(_delete_=True, **cfg['arch']),
                    **options,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)),
                )
            )
        )
    )
    with DefaultScope.overwrite_default_scope(scope):
        model = ROOT.build(c.model)
    _quiet(model.init_weights)
    return model


@pytest.mark.parametrize('config, scope', [(CLASSIFIER, 'mmpretrain'), (BIT, 'mmseg')])
@pytest.mark.parametrize('name', ['vit_small_patch14_reg4_dinov2', 'vit_small_plus_patch16_dinov3'])
def test_scene_classifier_and_change_detection_encoder_take_them(config, scope, name, converted):
    weights, cfg, path = converted[name]
    model = _downstream_backbone(config, scope, cfg, path)
    backbone = model.backbone
    assert type(backbone) is PerAViT
    own = backbone.state_dict()
    assert sorted(own) == sorted(weights)  # zero missing, nothing left over
    for key, value in weights.items():
        assert torch.equal(own[key], value), key
    backbone.eval()
    side = 4 * cfg['patch_size']
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        cls, registers, patches = backbone.forward_features(x)
    assert registers.shape[1] == cfg['num_register_tokens'] and torch.isfinite(patches).all()
