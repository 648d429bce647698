# Copyright (c) pera-mm contributors. All rights reserved.
"""The shipped scene-classification configs state method.md section 1.7's recipe."""

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401  (registers PerAViT and the constructor)
from pera_mm.testing import REPO_ROOT

CONFIGS = REPO_ROOT / 'configs' / 'scene_classification'
PRETRAIN_DATA = REPO_ROOT / 'configs' / '_base_' / 'datasets' / 'pera_rsrsd-448px.py'

# config -> (classes, train ann, lr, weight decay, drop path)
FINE_TUNE = {
    'pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py': (
        30,
        'meta/split-20-80_seed0_train.txt',
        1e-4,
        5e-6,
        0.1,
    ),
    'pera_vit-base-p16_ft-1xb16-200e_ucm-tr80-512px.py': (
        21,
        'meta/split-80-20_seed0_train.txt',
        5e-5,
        1e-4,
        0.3,
    ),
    'pera_vit-base-p16_ft-1xb16-200e_ucm-tr50-512px.py': (
        21,
        'meta/split-50-50_seed0_train.txt',
        5e-5,
        1e-4,
        0.3,
    ),
}
LINEAR = {
    'pera_vit-base-p16_linear-1xb16-100e_aid-tr20-512px.py': 30,
    'pera_vit-base-p16_linear-1xb16-100e_ucm-tr80-512px.py': 21,
}


def _cfg(name):
    return Config.fromfile(str(CONFIGS / name))


def _common(cfg, num_classes):
    pre = Config.fromfile(str(PRETRAIN_DATA)).data_preprocessor
    assert cfg.data_preprocessor.mean == pre.mean and cfg.data_preprocessor.std == pre.std
    assert cfg.data_preprocessor.to_rgb is False  # LoadRGBImageFromFile yields RGB
    assert cfg.model.type == 'ImageClassifier' and cfg.model.head.type == 'LinearClsHead'
    assert cfg.model.head.num_classes == num_classes == cfg.data_preprocessor.num_classes
    assert cfg.model.backbone.type == 'PerAViT' and cfg.model.backbone.out_type == 'cls_token'
    assert cfg.model.backbone.img_size == 512
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.train_dataloader.batch_size == 16
    assert cfg.test_evaluator == dict(type='Accuracy', topk=(1,))
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize']
    assert test_resize == [dict(type='Resize', scale=(512, 512), keep_ratio=False)]
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.type == 'RandomResizedCrop' and crop.scale == 512


@pytest.mark.parametrize('name', sorted(FINE_TUNE))
def test_fine_tune_configs(name):
    num_classes, train_ann, lr, wd, drop_path = FINE_TUNE[name]
    cfg = _cfg(name)
    _common(cfg, num_classes)
    assert cfg.train_dataloader.dataset.ann_file == train_ann
    assert cfg.test_dataloader.dataset.ann_file == train_ann.replace('_train', '_test')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.optimizer.weight_decay == wd
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimWrapperConstructor'
    assert cfg.model.backbone.drop_path_rate == drop_path
    assert cfg.model.backbone.drop_path_mode == 'row'
    assert cfg.train_cfg.max_epochs == 200
    (sched,) = cfg.param_scheduler
    assert sched.warmup == 20 and sched.start_factor == 0.0 and sched.param_name == 'lr'
    types = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert 'RandomApply' in types and types.count('RandomFlip') == 2  # jitter, both flips


@pytest.mark.parametrize('name', sorted(LINEAR))
def test_linear_probe_configs(name):
    cfg = _cfg(name)
    _common(cfg, LINEAR[name])
    assert cfg.model.backbone.frozen_stages == 12 and cfg.model.backbone.drop_path_rate == 0
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0)
    assert 'constructor' not in cfg.optim_wrapper
    assert cfg.train_cfg.max_epochs == 100


def test_vit_b_classifier_builds_with_layer_decay_and_freezing():
    """ViT-B at 512 px from the AID configs: lr(blocks.0) < lr(blocks.11) < lr(head)."""
    from mmpretrain.registry import MODELS

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        cfg = _cfg('pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py')
        model = MODELS.build(cfg.model)  # no init_weights: no checkpoint here
        assert model.backbone.pos_embed.shape == (1, 1 + 32 * 32, 768)
        assert model.head.fc.in_features == 768 and model.head.fc.out_features == 30
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        lr = {}
        for group in wrapper.optimizer.param_groups:
            for name in group['param_names']:
                lr[name] = group['lr']
        first = lr['backbone.blocks.0.attn.qkv.weight']
        last = lr['backbone.blocks.11.attn.qkv.weight']
        assert first < last < lr['head.fc.weight'] == 1e-4
        assert first == pytest.approx(1e-4 * 0.75**12)

        linear = MODELS.build(_cfg('pera_vit-base-p16_linear-1xb16-100e_aid-tr20-512px.py').model)
        frozen = [n for n, p in linear.named_parameters() if not p.requires_grad]
        trainable = [n for n, p in linear.named_parameters() if p.requires_grad]
        assert trainable == ['head.fc.weight', 'head.fc.bias']
        assert all(n.startswith('backbone.') for n in frozen)
