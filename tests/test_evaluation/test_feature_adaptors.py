# Copyright (c) pera-mm contributors. All rights reserved.
"""Each algorithm family's evaluation features equal its encoder's own downstream output."""

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from pera_mm.evaluation import build_feature_adaptor
from pera_mm.evaluation.feature_adaptors import (
    IJEPATargetFeatures,
    LatentMIMTargetFeatures,
    MAEEncoderFeatures,
    TeacherBackboneFeatures,
    normalise_rgb,
)
from pera_mm.testing import REPO_ROOT, build_small_model
from pera_mm.utils.errors import PeraConfigError

PERA = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py'
BASELINE = (
    REPO_ROOT / 'configs/pera/ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py'
)
IJEPA = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'
LATENT_MIM = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'


def build(config):
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(config).model)
        model.init_weights()
    return model.eval()


def perturb(module):
    """Move the online encoder away from its EMA copy, so the two give different features."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)


@pytest.mark.parametrize('config', [PERA, BASELINE], ids=['pera', 'dinov2-baseline'])
def test_pera_family_uses_the_teacher_cls_or_patch_mean(config):
    model, _ = build_small_model(config)
    model.eval()
    perturb(model.backbone)
    x = torch.randn(3, 3, 64, 64)
    adaptor = build_feature_adaptor(None, model)
    assert isinstance(adaptor, TeacherBackboneFeatures) and adaptor.pool == 'cls'
    teacher = model.teacher.backbone
    with torch.no_grad():
        dense_cls = teacher(x)[-1]  # the downstream dense path, out_type='cls_token'
        teacher.out_type = 'avg_featmap'
        dense_mean = teacher(x)[-1]
        student_cls = model.backbone(x)[-1]
    torch.testing.assert_close(adaptor(model, x), dense_cls, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(adaptor(model, x), student_cls, atol=1e-3)
    mean = build_feature_adaptor(dict(type='auto', pool='mean'), model)(model, x)
    torch.testing.assert_close(mean, dense_mean, rtol=1e-5, atol=1e-5)


def test_ijepa_uses_the_mean_of_the_target_encoder_patches():
    model = build(IJEPA)
    perturb(model.backbone)
    x = torch.randn(2, 3, 56, 56)
    adaptor = build_feature_adaptor(dict(type='auto'), model)
    assert isinstance(adaptor, IJEPATargetFeatures)
    with torch.no_grad():
        target, online = model.target_encoder(x)[0], model.backbone(x)[0]  # avg_featmap
    assert adaptor(model, x).shape == (2, 64)
    torch.testing.assert_close(adaptor(model, x), target, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(adaptor(model, x), online, atol=1e-3)
    with pytest.raises(PeraConfigError, match="pool must be one of \\('mean',\\)"):
        build_feature_adaptor(dict(type='auto', pool='cls'), model)


def test_latent_mim_uses_the_target_encoder_without_its_head():
    model = build(LATENT_MIM)
    perturb(model.backbone)
    x = torch.randn(2, 3, 80, 80)
    adaptor = build_feature_adaptor(None, model)
    assert isinstance(adaptor, LatentMIMTargetFeatures) and adaptor.pool == 'mean'
    with torch.no_grad():
        target, online = model.target(x)[0], model.backbone(x)[0]  # avg_featmap, no head
    torch.testing.assert_close(adaptor(model, x), target, rtol=1e-5, atol=1e-5)
    online_adaptor = build_feature_adaptor(
        dict(type='LatentMIMTargetFeatures', part='online'), model
    )
    torch.testing.assert_close(online_adaptor(model, x), online, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(target, online, atol=1e-3)


def tiny_mae():
    cfg = dict(
        type='MAE',
        backbone=dict(
            type='MAEViT',
            arch=dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128),
            img_size=64,
            patch_size=16,
            mask_ratio=0.75,
        ),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=16,
            patch_size=16,
            in_chans=3,
            embed_dim=64,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=2,
        ),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2'),
        ),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True,
        ),
    )
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
        model.init_weights()
    return model.eval()


def test_mae_encoder_runs_unmasked():
    model = tiny_mae()
    x = torch.randn(2, 3, 64, 64)
    adaptor = build_feature_adaptor(None, model)
    assert isinstance(adaptor, MAEEncoderFeatures)
    first, second = adaptor(model, x), adaptor(model, x)
    assert first.shape == (2, 64) and torch.equal(first, second)  # no random masking
    with torch.no_grad():
        masked = model.backbone(x)[0]  # masking on: cls + 25 % of the 16 patches
        tokens = model.extract_feat(x)[0]  # MAE's own unmasked path
    assert masked.shape == (2, 5, 64) and tokens.shape == (2, 17, 64)
    torch.testing.assert_close(first, tokens[:, 0])
    mean = build_feature_adaptor(dict(type='MAEEncoderFeatures', pool='mean'), model)(model, x)
    torch.testing.assert_close(mean, tokens[:, 1:].mean(1))


def test_inputs_are_normalised_with_the_pretraining_statistics_without_a_channel_flip():
    model = tiny_mae()  # its preprocessor flips BGR to RGB; the evaluation loads RGB already
    rgb = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    rgb[:, 0] = 200
    x = normalise_rgb(model, rgb)
    torch.testing.assert_close(
        x[0, :, 0, 0], torch.tensor([(200 - 123.675) / 58.395, -116.28 / 57.12, -103.53 / 57.375])
    )


def test_a_wrong_or_unknown_adaptor_is_a_one_line_error():
    model = tiny_mae()
    with pytest.raises(
        PeraConfigError, match='TeacherBackboneFeatures serves PerA, DINOv2Baseline, not MAE'
    ):
        build_feature_adaptor(dict(type='TeacherBackboneFeatures'), model)
    with pytest.raises(PeraConfigError, match='no feature adaptor for Linear'):
        build_feature_adaptor(None, torch.nn.Linear(2, 2))
