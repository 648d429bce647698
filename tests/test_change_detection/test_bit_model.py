# Copyright (c) pera-mm contributors. All rights reserved.
"""BITHead, BITResNet18, SiameseEncoderDecoder and BitemporalDataPreProcessor behaviour."""

import pytest
import torch
import torchvision
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import pera_mm  # noqa: F401  (registration)
from pera_mm.models.heads import BITHead
from pera_mm.utils.errors import PeraConfigError, PeraDataError


def bit_r18(**kwargs):
    cfg = dict(
        type='SiameseEncoderDecoder',
        data_preprocessor=dict(
            type='BitemporalDataPreProcessor', pixel_scale=255.0, mean=[0.5] * 3, std=[0.5] * 3
        ),
        backbone=dict(type='BITResNet18'),
        decode_head=dict(type='BITHead'),
        test_cfg=ConfigDict(mode='whole'),
    )
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmseg'):  # BaseModel builds its preprocessor
        return MODELS.build(cfg)


def change_pair(seed, size=64):
    """A uint8 (6, H, W) pair whose date B differs from A inside a square, and its label."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
    b = a.clone()
    y0, x0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
    b[:, y0 : y0 + size // 3, x0 : x0 + size // 3] = (
        255 - b[:, y0 : y0 + size // 3, x0 : x0 + size // 3]
    )
    label = torch.zeros(1, size, size, dtype=torch.long)
    label[:, y0 : y0 + size // 3, x0 : x0 + size // 3] = 1
    sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
    sample.gt_sem_seg = PixelData(data=label)
    return torch.cat([a, b]), sample


def test_head_config_errors_name_the_field():
    with pytest.raises(PeraConfigError, match=r'in_channels \(64\) must equal channels \(32\)'):
        BITHead(in_channels=64, channels=32)
    with pytest.raises(PeraConfigError, match='token_len must be an int >= 1'):
        BITHead(token_len=0)
    with pytest.raises(PeraConfigError, match='dec_depth must be an int >= 1'):
        BITHead(dec_depth=0)
    head = BITHead()
    with pytest.raises(PeraConfigError, match='inputs must be a pair'):
        head.forward([torch.zeros(1, 32, 8, 8)])
    with pytest.raises(PeraConfigError, match='different shapes'):
        head.forward((torch.zeros(1, 32, 8, 8), torch.zeros(1, 32, 8, 4)))
    with pytest.raises(PeraConfigError, match='in_channels=32'):
        head.forward((torch.zeros(1, 16, 8, 8), torch.zeros(1, 16, 8, 8)))


def test_head_default_init_is_the_reference_init():
    torch.manual_seed(0)
    head = BITHead()
    head.init_weights()
    linear = torch.cat([m.weight.flatten() for m in head.modules() if type(m) is torch.nn.Linear])
    conv = torch.cat([m.weight.flatten() for m in head.modules() if type(m) is torch.nn.Conv2d])
    assert linear.std().item() == pytest.approx(0.02, rel=0.05)
    assert conv.std().item() == pytest.approx(0.02, rel=0.05)
    biases = [m.bias for m in head.modules() if type(m) in (torch.nn.Linear, torch.nn.Conv2d)]
    assert all(b is None or torch.equal(b, torch.zeros_like(b)) for b in biases)
    bn = head.cls_norm
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.02) and 0 < bn.weight.std() < 0.04
    assert torch.equal(bn.bias, torch.zeros(32))
    norms = [m for m in head.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 1 + 2 * 8
    assert all(torch.equal(n.weight, torch.ones(32)) for n in norms)
    assert head.pos_embed.std().item() == pytest.approx(1.0, rel=0.3)


def test_head_without_pos_embed_and_shapes():
    head = BITHead(with_pos_embed=False, token_len=2, upsample_factor=2).eval()
    assert head.pos_embed is None
    x1, x2 = torch.randn(2, 32, 6, 10), torch.randn(2, 32, 6, 10)
    out, inter = head.forward_pair(x1, x2, return_intermediates=True)
    assert out.shape == (2, 2, 12, 20)
    assert inter['tokens1'].shape == (2, 2, 32) and inter['tokens_after_encoder'].shape == (
        2,
        4,
        32,
    )
    assert inter['decoded1'].shape == x1.shape
    # identical dates: |d1 - d2| = 0 everywhere, so every pixel gets the same logits
    same = head.forward_pair(x1, x1)
    assert torch.allclose(same, same[:, :, :1, :1].expand_as(same), atol=1e-6)


def test_bit_resnet18_shapes_and_stage_options():
    backbone = MODELS.build(dict(type='BITResNet18')).eval()
    (out,) = backbone(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 32, 16, 24)
    assert backbone.layer3[0].conv1.stride == (1, 1) and backbone.layer3[0].conv1.dilation == (1, 1)
    assert backbone.layer3[0].downsample[0].stride == (1, 1)
    assert not hasattr(backbone, 'layer4')
    three = MODELS.build(dict(type='BITResNet18', num_stages=3, upsample_2x=False)).eval()
    assert three(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 8, 8)
    assert three.conv_pred.in_channels == 128
    five = MODELS.build(dict(type='BITResNet18', num_stages=5, out_channels=16)).eval()
    assert five(torch.randn(1, 3, 64, 64))[0].shape == (1, 16, 16, 16)
    assert five.conv_pred.in_channels == 512 and five.layer4[0].conv1.stride == (1, 1)
    with pytest.raises(PeraConfigError, match='num_stages must be 3, 4 or 5'):
        MODELS.build(dict(type='BITResNet18', num_stages=6))


def test_bit_resnet18_loads_a_local_torchvision_checkpoint(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    ckpt = tmp_path / 'resnet18-imagenet.pth'
    torch.save(tv.state_dict(), ckpt)
    backbone = MODELS.build(
        dict(type='BITResNet18', init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    )
    backbone.init_weights()
    ours = backbone.state_dict()
    theirs = tv.state_dict()
    trunk = [k for k in ours if not k.startswith('conv_pred.')]
    assert len(trunk) == len([k for k in theirs if k.split('.')[0] not in ('layer4', 'fc')])
    for key in trunk:
        assert torch.equal(ours[key], theirs[key]), key


def test_data_preprocessor_per_date_normalisation_and_errors():
    prep = MODELS.build(
        dict(
            type='BitemporalDataPreProcessor',
            mean=[1.0, 2.0, 3.0],
            std=[2.0, 2.0, 2.0],
            bgr_to_rgb=True,
        )
    )
    x = torch.arange(6, dtype=torch.uint8).view(6, 1, 1).expand(6, 2, 2).clone()
    out = prep(dict(inputs=[x]))['inputs']
    expected = (torch.tensor([2.0, 1.0, 0.0, 5.0, 4.0, 3.0]) - torch.tensor([1.0, 2, 3] * 2)) / 2
    assert torch.equal(out[0, :, 0, 0], expected)
    six = MODELS.build(dict(type='BitemporalDataPreProcessor', mean=[0.0] * 6, std=[1.0] * 6))
    assert torch.equal(six(dict(inputs=[x]))['inputs'][0], x.float())
    with pytest.raises(PeraDataError, match=r'\(2 \* C, H, W\)'):
        prep(dict(inputs=[torch.zeros(5, 2, 2)]))
    with pytest.raises(PeraConfigError, match='expected 2 .* or 4'):
        MODELS.build(dict(type='BitemporalDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3))(
            dict(inputs=[torch.zeros(4, 2, 2)])
        )
    with pytest.raises(PeraConfigError, match='give both mean and std'):
        MODELS.build(dict(type='BitemporalDataPreProcessor', mean=[0.0] * 3))


def test_training_pads_inputs_and_labels_together():
    prep = MODELS.build(dict(type='BitemporalDataPreProcessor', pixel_scale=255.0, size_divisor=32))
    pair, sample = change_pair(0, size=40)
    out = prep(dict(inputs=[pair], data_samples=[sample]), training=True)
    assert out['inputs'].shape == (1, 6, 64, 64)
    label = out['data_samples'][0].gt_sem_seg.data
    assert label.shape == (1, 64, 64) and (label[:, 40:] == 255).all()
    assert torch.equal(out['inputs'][0, :, :40, :40], pair.float() / 255)


def test_siamese_encoder_runs_each_date_on_its_own():
    """Train-mode BN sees each date's own batch, as BIT's per-date forward_single."""
    model = bit_r18(backbone=dict(type='BITResNet18', num_stages=3))
    model.train()
    inputs = torch.randn(2, 6, 32, 32)
    with torch.no_grad():
        feats_a, feats_b = model.extract_feat(inputs)
        ref_a = model.backbone(inputs[:, :3])[0]
        ref_b = model.backbone(inputs[:, 3:])[0]
        joint = model.backbone(torch.cat([inputs[:, :3], inputs[:, 3:]]))[0]
    assert torch.equal(feats_a[0], ref_a) and torch.equal(feats_b[0], ref_b)
    assert not torch.allclose(joint[:2], ref_a, atol=1e-3)
    with pytest.raises(PeraDataError, match='inputs must be'):
        model.extract_feat(torch.randn(1, 5, 32, 32))


def test_bit_r18_trains_and_predicts():
    """A small BIT-R18 (2 trunk stages, 2 decoder layers) learns two 32-px pairs."""
    torch.manual_seed(0)
    small = dict(
        backbone=dict(type='BITResNet18', num_stages=3),
        decode_head=dict(type='BITHead', dec_depth=2),
    )
    model = bit_r18(**small)
    model.data_preprocessor.size = (32, 32)  # MMSeg's training batches need a size
    model.init_weights()
    data = [change_pair(i, size=32) for i in range(2)]
    batch = dict(inputs=[d[0] for d in data], data_samples=[d[1] for d in data])
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        processed = model.data_preprocessor(batch, training=True)
        loss = model(**processed, mode='loss')
        assert set(loss) == {'decode.loss_ce', 'decode.acc_seg'}
        optim.zero_grad()
        loss['decode.loss_ce'].backward()
        optim.step()
        losses.append(loss['decode.loss_ce'].item())
    assert losses[-1] < 0.8 * losses[0], losses
    model.eval()
    processed = model.data_preprocessor(batch, training=False)
    with torch.no_grad():
        samples = model(**processed, mode='predict')
    assert samples[0].pred_sem_seg.data.shape == (1, 32, 32)
    assert samples[0].seg_logits.data.shape == (2, 32, 32)
    assert set(samples[0].pred_sem_seg.data.unique().tolist()) <= {0, 1}
    slide = bit_r18(test_cfg=ConfigDict(mode='slide', crop_size=(16, 16), stride=(8, 8)), **small)
    slide.load_state_dict(model.state_dict())
    slide.eval()
    metas = [s.metainfo for s in processed['data_samples']]
    with torch.no_grad():
        logits = slide.inference(processed['inputs'], metas)
    assert logits.shape == (2, 2, 32, 32)


def test_loss_is_bits_cross_entropy_over_labelled_pixels():
    """BIT trains with ``F.cross_entropy(logits, label, ignore_index=255)`` (mean over labelled)."""
    head = BITHead()
    logits = torch.randn(2, 2, 8, 8)
    label = torch.randint(0, 2, (2, 1, 8, 8))
    label[0, 0, :3] = 255
    samples = []
    for i in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label[i])
        samples.append(s)
    loss = head.loss_by_feat(logits, samples)['loss_ce']
    expected = torch.nn.functional.cross_entropy(logits, label[:, 0], ignore_index=255)
    assert torch.allclose(loss, expected, rtol=1e-6)
