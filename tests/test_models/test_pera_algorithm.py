import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from pera_mm.testing import REPO_ROOT, build_small_model, synthetic_batch

REPO = REPO_ROOT
PERA_CONFIGS = sorted((REPO / 'configs/pera').rglob('*.py'))
BASE = REPO / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'


def make_batch(transforms, B=4, seed=0):
    return synthetic_batch(transforms, B, 96, seed)


def build(config=BASE):
    return build_small_model(config)


@pytest.mark.parametrize('config', PERA_CONFIGS, ids=lambda p: p.stem)
def test_every_config_builds_and_trains_one_step(config):
    model, pipeline = build(config)
    data = model.data_preprocessor(make_batch(pipeline), training=True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    for key in ('monitor_cls_cosine', 'monitor_cls_erank', 'monitor_target_entropy'):
        assert torch.isfinite(losses[key])


def test_loss_terms_follow_the_released_code():
    model, pipeline = build()
    data = model.data_preprocessor(make_batch(pipeline), training=True)
    losses = model(**data, mode='loss')
    assert {'loss_cls_global', 'loss_cls_local', 'loss_koleo', 'loss_pixel'} <= set(losses)
    # 2 global + 2 local crops: each part carries its share of the crop average
    assert losses['loss_cls_global'] > 0 and losses['loss_cls_local'] > 0
    assert model.mask_token.grad is None
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.mask_token.grad.abs().sum() > 0
    assert model.predictor.last_layer.weight_v.grad.abs().sum() > 0


def test_no_compute_on_dropped_tokens():
    """Every block sees exactly cls + the tokens its path keeps."""
    model, pipeline = build()
    batch = make_batch(pipeline)
    lengths = {'student': [], 'teacher': []}
    for name, vit in (('student', model.backbone), ('teacher', model.teacher.backbone)):
        for blk in vit.blocks:
            blk.register_forward_pre_hook(
                lambda m, args, name=name: lengths[name].append(_lengths(args[0]))
            )
    data = model.data_preprocessor(batch, training=True)
    model(**data, mode='loss')
    # 64 px / 16 -> 16 patches: s 3, l 3, t 10; local 32 px -> 4 patches: s 1, t 2
    assert lengths['teacher'] == [11] * 4 + [3] * 4
    # the student's global and local sequences share each block call (pack_crops)
    assert lengths['student'] == [[4, 2]] * 2 + [[7, 2]] * 2
    model.backbone.pack_crops = False
    lengths['student'].clear()
    model(**data, mode='loss')
    assert lengths['student'] == [4] * 2 + [7] * 2 + [2] * 4


def _lengths(x):
    """Token count of a block's input, or of each sequence of a packed call."""
    return [t.shape[1] for t in x] if isinstance(x, list) else x.shape[1]


def test_teacher_starts_as_copy_and_follows_ema():
    model, _ = build()
    for (k, t), s in zip(
        model.teacher.backbone.state_dict().items(), model.backbone.state_dict().values()
    ):
        assert torch.equal(t, s), k
    t0 = [p.clone() for p in model.teacher.parameters()]
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    model.update_teacher(0.9)
    t_params, s_params = model.ema_pairs()
    for t_old, t_new, s in zip(t0, t_params, s_params):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * s)


def test_tensor_mode_returns_teacher_features():
    model, _ = build()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.mul_(0.5)  # student and teacher now differ
        x = torch.randn(2, 3, 64, 64)
        feats = model(x, mode='tensor')
        torch.testing.assert_close(feats[0], model.teacher.backbone(x)[0])
        assert not torch.allclose(feats[0], model.backbone(x)[0])


def test_invalid_options_raise():
    cfg = Config.fromfile(BASE)
    for key, value in (('koleo_crop_reduction', 'max'), ('pixel_target', 'raw')):
        bad = cfg.model.copy()
        bad[key] = value
        with pytest.raises(ValueError, match=key):
            MODELS.build(bad)
    bad = cfg.model.copy()
    bad['pixel_loss'] = None
    with pytest.raises(ValueError, match='predictor and pixel_loss'):
        MODELS.build(bad)
