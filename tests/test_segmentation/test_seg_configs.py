# Copyright (c) pera-mm contributors. All rights reserved.
"""The segmentation configs: the paper's recipe, the adapter per size, layer decay."""

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401  (registers the backbone, constructor and metric)
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.adapter_sizes import VIT_ADAPTER_SIZES

SEG = REPO_ROOT / 'configs/segmentation'
PRETRAIN_DATA = REPO_ROOT / 'configs/_base_/datasets/pera_rsrsd-448px.py'
FULL = sorted(p for p in SEG.glob('*.py') if not p.stem.endswith('_cpu-smoke'))
SMOKE = sorted(SEG.glob('*_cpu-smoke.py'))


def _load(path):
    return Config.fromfile(str(path), import_custom_modules=False)


def test_every_size_and_dataset_is_shipped():
    names = {p.stem for p in FULL}
    for size in VIT_ADAPTER_SIZES:
        for ds in ('potsdam', 'loveda'):
            assert f'upernet_pera-vit-adapter-{size}-p16_4xb2-200e_{ds}-512x512' in names
    assert {p.stem.split('_')[3] for p in SMOKE} == {
        'potsdam-64x64',
        'loveda-64x64',
        'vaihingen-64x64',
    }


@pytest.mark.parametrize('path', FULL, ids=lambda p: p.stem)
def test_full_config_recipe(path):
    cfg = _load(path)
    size = path.stem.split('_')[1].split('-')[3]
    dims, heads, indexes, with_cp = VIT_ADAPTER_SIZES[size]
    assert cfg.default_scope == 'mmseg' and cfg.custom_imports.imports == ['pera_mm']
    lora = path.stem.endswith('_lora')
    # the LoRA variant wraps the adapter (ViTLoRAModel); the adapter settings are the same
    bb = cfg.model.backbone.module if lora else cfg.model.backbone
    assert cfg.model.backbone.type == ('ViTLoRAModel' if lora else 'PerAViTAdapter')
    assert bb.type == 'PerAViTAdapter' and bb.patch_size == 16 and bb.pretrain_size == 448
    assert (bb.deform_num_heads, bb.interaction_indexes, bb.with_cp) == (heads, indexes, with_cp)
    assert (bb.n_points, bb.cffn_ratio, bb.init_values, bb.conv_inplane) == (4, 0.25, 0.0, 64)
    assert bb.deform_ratio == (0.5 if path.stem.endswith('deform-ratio-0.5') else 1.0)
    assert bb.drop_path_rate == 0.1 and bb.drop_path_mode == 'row'
    assert bb.norm_cfg.type == 'SyncBN'
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.checkpoint.endswith('.pth')
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert head.type == 'UPerHead' and head.channels == 512 and head.in_channels == [dims] * 4
    assert aux.type == 'FCNHead' and aux.channels == 256 and aux.in_channels == dims
    assert head.norm_cfg.type == aux.norm_cfg.type == 'SyncBN'
    assert head.loss_decode.type == aux.loss_decode.type == 'CrossEntropyLoss'
    classes = 7 if 'loveda' in path.stem else 6
    assert head.num_classes == aux.num_classes == classes
    assert cfg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(256, 256))
    # normalisation of the pretraining
    pre = _load(PRETRAIN_DATA).data_preprocessor
    dp = cfg.model.data_preprocessor
    assert dp.mean == pre.mean and dp.std == pre.std and dp.bgr_to_rgb is True
    assert dp.size_divisor == 32 and dp.test_cfg.size_divisor == 32 and dp.seg_pad_val == 255
    # method.md 1.7: AdamW, 200 epochs, batch 8, lr 0 -> max over 20 epochs -> 5e-6, wd 1e-4
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.weight_decay == 1e-4
    assert opt.optimizer.lr == (5e-5 if 'loveda' in path.stem else 1e-4)
    assert opt.constructor == 'LayerDecayOptimWrapperConstructor'
    # LoRA trains only low-rank updates: no layer decay (docs/parameter_efficient_finetuning.md)
    assert (
        opt.paramwise_cfg.layer_decay_rate == 1.0
        if lora
        else 0 < opt.paramwise_cfg.layer_decay_rate < 1
    )
    (sched,) = cfg.param_scheduler
    assert sched.warmup == 20 and sched.start_factor == 0.0 and sched.final_value == 5e-6
    assert cfg.train_cfg.max_epochs == 200 and cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
    assert cfg.train_dataloader.batch_size * int(path.stem.split('_')[2][0]) == 8
    assert cfg.auto_scale_lr.base_batch_size == 8
    assert cfg.default_hooks.visualization.type == 'SegVisualizationHook'
    assert cfg.tta_model.type == 'SegTTAModel' and cfg.get('tta_pipeline')


def _param_lr(optim_wrapper, name):
    for group in optim_wrapper.optimizer.param_groups:
        if name in group['param_names']:
            return group['lr']
    raise AssertionError(f'{name} is in no parameter group')


def test_layer_decay_from_the_vit_b_config():
    """lr(blocks.0) < lr(blocks.11) < lr(decode_head), built from the ViT-B Potsdam config."""
    from mmseg.registry import MODELS

    cfg = _load(SEG / 'upernet_pera-vit-adapter-base-p16_4xb2-200e_potsdam-512x512.py')
    cfg.model.backbone.init_cfg = None  # the structure is enough: no weights
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    lr = cfg.optim_wrapper.optimizer.lr
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    b0 = _param_lr(optim, 'backbone.blocks.0.attn.qkv.weight')
    b11 = _param_lr(optim, 'backbone.blocks.11.attn.qkv.weight')
    head = _param_lr(optim, 'decode_head.conv_seg.weight')
    assert b0 < b11 < head == lr
    # depths: blocks.i -> i + 1 of 14, so lr * rate ** (13 - (i + 1))
    assert b0 == pytest.approx(lr * rate**12) and b11 == pytest.approx(lr * rate**1)
    assert _param_lr(optim, 'backbone.patch_embed.proj.weight') == pytest.approx(lr * rate**13)
    # adapter-only parameters and the auxiliary head get the full lr
    for name in (
        'backbone.spm.fc1.weight',
        'backbone.level_embed',
        'backbone.interactions.0.injector.gamma',
        'backbone.norm4.weight',
    ):
        assert _param_lr(optim, name) == lr, name
    assert _param_lr(optim, 'auxiliary_head.conv_seg.weight') == lr
    # no weight decay on the embeddings
    for group in optim.optimizer.param_groups:
        if 'backbone.level_embed' in group['param_names']:
            assert group['weight_decay'] == 0.0
    assert isinstance(optim.optimizer, torch.optim.AdamW)
