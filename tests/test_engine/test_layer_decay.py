# Copyright (c) pera-mm contributors. All rights reserved.
"""Layer-wise lr decay through ``backbone.get_layer_depth`` and ``frozen_stages``."""

import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401  (registers the constructor and backbones)
from pera_mm.engine.optimizers.layer_decay_optim_wrapper_constructor import (
    LayerDecayOptimWrapperConstructor,
)
from pera_mm.testing.config_shrink import TINY_ARCH
from pera_mm.utils.errors import PeraConfigError

L = TINY_ARCH['num_layers']
LR, WD, RATE = 1e-3, 0.05, 0.5
ADAPTER = dict(
    type='mmseg.PerAViTAdapter',
    arch=TINY_ARCH,
    pretrain_size=64,
    conv_inplane=8,
    deform_num_heads=4,
)


def _segmentor(frozen_stages=-1):
    from mmseg.registry import MODELS

    cfg = dict(
        type='mmseg.EncoderDecoder',
        data_preprocessor=dict(type='mmseg.SegDataPreProcessor'),
        backbone=dict(ADAPTER, frozen_stages=frozen_stages),
        decode_head=dict(
            type='mmseg.FCNHead',
            in_channels=64,
            in_index=2,
            channels=16,
            num_convs=1,
            num_classes=3,
            concat_input=False,
        ),
    )
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg)
    model.init_weights()
    return model


def _optim(model, scope='mmseg', rate=RATE):
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=rate),
    )
    with DefaultScope.overwrite_default_scope(scope):
        return build_optim_wrapper(model, cfg)


def _expected_depth(name):
    """The stated rule, written independently of the implementation."""
    name = name[len('backbone.') :]
    if name in ('pos_embed', 'cls_token') or name.startswith('patch_embed.'):
        return 0
    if name.startswith('blocks.'):
        return int(name.split('.')[1]) + 1
    return L + 1


def _per_param(optim_wrapper):
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for name in group['param_names']:
            out[name] = (group['lr'], group['weight_decay'])
    return out


def test_encoder_decoder_lr_and_weight_decay():
    model = _segmentor()
    per = _per_param(_optim(model))
    names = [n for n, _ in model.named_parameters()]
    assert sorted(per) == sorted(names)  # every parameter once
    for name in names:
        lr, wd = per[name]
        if name.startswith('backbone.'):
            assert lr == pytest.approx(LR * RATE ** (L + 1 - _expected_depth(name))), name
        else:
            assert lr == pytest.approx(LR), name
        param = dict(model.named_parameters())[name]
        exempt = (
            param.ndim == 1 or name.endswith('.bias') or name.endswith(('pos_embed', 'cls_token'))
        )
        assert wd == (0.0 if exempt else WD), name
    lr0 = per['backbone.blocks.0.attn.qkv.weight'][0]
    lr_last = per[f'backbone.blocks.{L - 1}.attn.qkv.weight'][0]
    lr_head = per['decode_head.conv_seg.weight'][0]
    assert lr0 < lr_last < lr_head
    assert lr0 == pytest.approx(LR * RATE**L)
    assert lr_last == pytest.approx(LR * RATE)
    assert per['backbone.pos_embed'] == (pytest.approx(LR * RATE ** (L + 1)), 0.0)
    assert per['backbone.patch_embed.proj.weight'][0] == pytest.approx(LR * RATE ** (L + 1))
    # adapter-only parameters: full lr
    for name in (
        'backbone.level_embed',
        'backbone.spm.stem.0.weight',
        'backbone.up.weight',
        'backbone.norm1.weight',
    ):
        assert per[name][0] == pytest.approx(LR), name
    adapter = [n for n in names if 'interactions.' in n]
    assert adapter and all(per[n][0] == pytest.approx(LR) for n in adapter)
    # weight decay on matrices, not on biases / norms / pos_embed
    assert per['backbone.blocks.0.attn.qkv.weight'][1] == WD
    assert per['backbone.level_embed'][1] == WD  # 2-D, not in no_decay_names
    assert per['backbone.blocks.0.attn.qkv.bias'][1] == 0.0
    assert per['backbone.blocks.0.norm1.weight'][1] == 0.0
    assert per['decode_head.conv_seg.bias'][1] == 0.0


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet', 'mmpretrain', 'mmengine'])
def test_constructor_registered_in_every_scope(scope):
    registry = {
        'mmseg': 'mmseg.registry',
        'mmdet': 'mmdet.registry',
        'mmpretrain': 'mmpretrain.registry',
        'mmengine': 'mmengine.registry',
    }[scope]
    module = __import__(registry, fromlist=['OPTIM_WRAPPER_CONSTRUCTORS'])
    assert (
        module.OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimWrapperConstructor')
        is LayerDecayOptimWrapperConstructor
    )


def test_image_classifier_with_pera_vit():
    from mmpretrain.registry import MODELS

    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='PerAViT', arch=TINY_ARCH, img_size=64),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=64),
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    per = _per_param(_optim(model, 'mmpretrain', rate=0.8))
    assert per['backbone.cls_token'] == (pytest.approx(LR * 0.8 ** (L + 1)), 0.0)
    assert per['backbone.blocks.2.mlp.fc1.weight'] == (pytest.approx(LR * 0.8 ** (L - 2)), WD)
    assert per['backbone.norm.weight'] == (pytest.approx(LR), 0.0)
    assert per['head.fc.weight'] == (pytest.approx(LR), WD)
    # the depth rule of the backbone itself
    vit = model.backbone
    assert vit.get_layer_depth('backbone.patch_embed.proj.weight', 'backbone.') == (0, L + 2)
    assert vit.get_layer_depth('backbone.blocks.3.ls1.gamma', 'backbone.') == (4, L + 2)
    assert vit.get_layer_depth('head.fc.weight', 'backbone.') == (L + 1, L + 2)


def test_bad_configs_raise_one_line():
    with pytest.raises(PeraConfigError, match='layer_decay_rate'):
        LayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1.0)), dict(layer_decay_rate=1.5)
        )
    with pytest.raises(PeraConfigError, match='unknown paramwise_cfg key.*num_layers'):
        LayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1.0)), dict(num_layers=12)
        )
    constructor = LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1.0)))
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    with pytest.raises(PeraConfigError, match='Linear has no get_layer_depth'):
        constructor(model)


def test_frozen_stages_adapter_no_grad_eval_and_unchanged_after_step():
    model = _segmentor(frozen_stages=2)
    backbone = model.backbone
    optim_wrapper = _optim(model)
    in_optim = {n for g in optim_wrapper.optimizer.param_groups for n in g['param_names']}
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert set(frozen) == {
        n
        for n, _ in model.named_parameters()
        if n.startswith(('backbone.patch_embed.', 'backbone.blocks.0.', 'backbone.blocks.1.'))
        or n == 'backbone.pos_embed'
    }
    assert not in_optim & set(frozen)
    model.train()
    assert not backbone.blocks[0].training and not backbone.blocks[1].training
    assert not backbone.patch_embed.training
    assert backbone.blocks[2].training and backbone.spm.training
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    feats = model.extract_feat(x)
    loss = model.decode_head(feats).pow(2).mean() + sum(f.mean() for f in feats)
    optim_wrapper.update_params(loss)
    after = model.state_dict()
    for name in frozen:
        assert dict(model.named_parameters())[name].grad is None, name
        assert torch.equal(before[name], after[name]), name
    changed = [
        n
        for n in (
            'backbone.blocks.2.attn.qkv.weight',
            'backbone.spm.stem.0.weight',
            'decode_head.conv_seg.weight',
        )
        if not torch.equal(before[n], after[n])
    ]
    assert len(changed) == 3


def test_frozen_stages_pera_vit():
    from pera_mm.models.backbones.pera_vit import PerAViT

    vit = PerAViT(arch=TINY_ARCH, img_size=64, frozen_stages=L)
    assert not any(p.requires_grad for p in vit.parameters())
    vit.train()
    assert not vit.norm.training and not vit.blocks[L - 1].training
    vit = PerAViT(arch=TINY_ARCH, img_size=64, frozen_stages=0)
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in vit.named_parameters() if n.startswith(('blocks.', 'norm.'))}
    assert all(p.requires_grad for p in PerAViT(arch=TINY_ARCH, img_size=64).parameters())
    with pytest.raises(PeraConfigError, match=r'frozen_stages must be an int in \[-1, 4\]'):
        PerAViT(arch=TINY_ARCH, img_size=64, frozen_stages=5)
