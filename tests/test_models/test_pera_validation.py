# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA checks its configuration once, with one-line errors, and never syncs for it."""

import copy

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS, TRANSFORMS

from pera_mm.testing import (
    REPO_ROOT,
    TINY_ARCH,
    build_small_model,
    shrink_model_config,
    shrink_pipeline,
    synthetic_batch,
)
from pera_mm.utils import PeraConfigError

CONFIGS = REPO_ROOT / 'configs/pera'
PERA = CONFIGS / 'pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
BASELINE = CONFIGS / 'ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py'
NO_DISJOINT = CONFIGS / 'ablations/pera_vit-base-p16_8xb24-200e_rsrsd-448px_no-disjoint.py'


def _model_and_transforms(config, side=64, mask_patch=None, **model_overrides):
    cfg = Config.fromfile(config)
    model_cfg = shrink_model_config(
        cfg.model, TINY_ARCH, side, 64, hidden_channels=32, bottleneck_channels=16
    )
    model_cfg.update(model_overrides)
    pipeline = shrink_pipeline(cfg.train_dataloader.dataset.pipeline, side, side // 2, 2)
    if mask_patch is not None:
        for t in pipeline:
            if t['type'] == 'DisjointMaskGenerator':
                t['patch_size'] = mask_patch
    model = MODELS.build(model_cfg)
    return model, [TRANSFORMS.build(t) for t in pipeline]


def _step(model, transforms, side=112):
    data = model.data_preprocessor(synthetic_batch(transforms, 2, side), training=True)
    return model(**data, mode='loss')


def test_mask_grid_must_match_the_backbone_patch_size():
    # 112 px crops: a 16-px mask generator draws 7x7 masks, a 14-px ViT has an 8x8 grid
    cfg = Config.fromfile(PERA)
    model_cfg = shrink_model_config(
        cfg.model, TINY_ARCH, 112, 64, hidden_channels=32, bottleneck_channels=16, patch_size=14
    )
    model = MODELS.build(model_cfg)
    transforms = [
        TRANSFORMS.build(t)
        for t in shrink_pipeline(cfg.train_dataloader.dataset.pipeline, 112, 48, 2)
    ]
    with pytest.raises(PeraConfigError, match=r'global_masks: 49 patches .* 8x8 grid'):
        _step(model, transforms)


def test_predictor_with_dense_views_is_an_error():
    # the no-disjoint ablation's masks have no l patches; a predictor would get no loss
    cfg = Config.fromfile(PERA)
    model, transforms = _model_and_transforms(
        NO_DISJOINT,
        predictor=copy.deepcopy(dict(cfg.model.predictor)),
        pixel_loss=dict(cfg.model.pixel_loss),
    )
    with pytest.raises(PeraConfigError, match='predictor is configured but the masks have no l'):
        _step(model, transforms, side=96)


def test_l_patches_without_predictor_is_an_error():
    model, transforms = _model_and_transforms(PERA, predictor=None, pixel_loss=None)
    with pytest.raises(PeraConfigError, match='masks have l patches but no predictor'):
        _step(model, transforms, side=96)


def test_head_and_loss_widths_are_derived():
    model, _ = build_small_model(PERA)
    width = TINY_ARCH['embed_dims']
    assert model.projector.mlp[0].in_features == width
    assert model.predictor.mlp[0].in_features == width
    assert model.predictor.last_layer.out_features == 16 * 16 * 3
    assert model.cls_loss.center.shape == (1, model.projector.out_channels) == (1, 256)


def test_a_stated_width_that_disagrees_fails_with_its_field():
    cfg = Config.fromfile(PERA)
    model_cfg = shrink_model_config(cfg.model, TINY_ARCH, 64, 64)
    model_cfg['projector']['in_channels'] = 768
    with pytest.raises(PeraConfigError, match=r'projector\.in_channels is 768 but must be 64'):
        MODELS.build(model_cfg)


@pytest.mark.parametrize('chunk_size', [None, 100])
def test_no_host_sync_in_the_pera_step(chunk_size):
    """No scalar is read back (``aten::_local_scalar_dense``) for any check.

    The collapse monitor's SVD checks its own convergence on the host, so the
    count is taken with ``monitor=False``.
    """
    model, transforms = build_small_model(PERA)
    model.monitor = False
    model.cls_loss.chunk_size = chunk_size
    data = model.data_preprocessor(synthetic_batch(transforms, 4, 96), training=True)
    with torch.profiler.profile() as prof:
        losses = model(**data, mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    syncs = sum(e.count for e in prof.key_averages() if e.key == 'aten::_local_scalar_dense')
    assert syncs == 0


def test_baseline_is_its_own_class_with_full_teacher_views():
    model, transforms = build_small_model(BASELINE)
    assert type(model).__name__ == 'DINOv2Baseline'
    lengths = {'student': [], 'teacher': []}
    for name, vit in (('student', model.backbone), ('teacher', model.teacher.backbone)):
        for blk in vit.blocks:
            blk.register_forward_pre_hook(
                lambda m, args, name=name: lengths[name].append(args[0].shape[1])
            )
    data = model.data_preprocessor(synthetic_batch(transforms, 4, 96), training=True)
    losses = model(**data, mode='loss')
    # teacher: the two 64-px globals in full (1 + 16 tokens), no local crops;
    # student: full globals (mask tokens in place), then the 32-px locals whole (1 + 4)
    assert lengths['teacher'] == [17] * 4
    assert lengths['student'] == [17] * 4 + [5] * 4
    assert set(k for k in losses if k.startswith('loss')) == {
        'loss_cls',
        'loss_koleo',
        'loss_patch',
    }
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.mask_token.grad.abs().sum() > 0


def test_baseline_rejects_the_chunked_loss():
    cfg = Config.fromfile(BASELINE)
    model_cfg = shrink_model_config(cfg.model, TINY_ARCH, 64, 64)
    model_cfg['cls_loss']['chunk_size'] = 16
    with pytest.raises(PeraConfigError, match='chunk_size is not supported'):
        MODELS.build(model_cfg)
