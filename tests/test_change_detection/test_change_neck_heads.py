"""The ViT side of BIT (ChangeFeatureProjection) and the fused-feature head, on the TINY ViT."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import pera_mm  # noqa: F401
from pera_mm.testing import TINY_ARCH
from pera_mm.utils.errors import PeraConfigError


def test_projection_upsamples_bilinear_and_projects():
    torch.manual_seed(0)
    neck = MODELS.build(
        dict(type='ChangeFeatureProjection', in_channels=64, out_channels=32, scale_factors=4)
    )
    x = torch.randn(2, 64, 4, 5)
    (out,) = neck([x])
    expected = neck.proj(F.interpolate(x, scale_factor=4, mode='bilinear', align_corners=False))
    assert out.shape == (2, 32, 16, 20)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # pair mode (Open-CD calls neck(feats_a, feats_b)): each date alone, shared weights
    y = torch.randn(2, 64, 4, 5)
    (pa,), (pb,) = neck([x], [y])
    torch.testing.assert_close(pa, out, rtol=0, atol=0)
    torch.testing.assert_close(pb, neck([y])[0], rtol=0, atol=0)


def test_projection_multi_level_and_errors():
    neck = MODELS.build(
        dict(
            type='ChangeFeatureProjection',
            in_channels=[8, 16],
            in_index=[0, 2],
            scale_factors=[1, 4],
            out_channels=4,
        )
    )
    feats = [torch.randn(1, 8, 16, 16), torch.randn(1, 3, 8, 8), torch.randn(1, 16, 4, 4)]
    assert neck(feats)[0].shape == (1, 4, 16, 16)
    with pytest.raises(PeraConfigError, match='level 2 should be'):
        neck([feats[0], feats[1], torch.randn(1, 9, 4, 4)])
    with pytest.raises(PeraConfigError, match='one entry per level'):
        MODELS.build(dict(type='ChangeFeatureProjection', in_channels=[8], in_index=[0, 1]))


@pytest.mark.parametrize('fusion', ['concat', 'diff', 'abs_diff'])
def test_fused_head_fusions(fusion):
    torch.manual_seed(0)
    head = MODELS.build(
        dict(
            type='FusedChangeHead',
            fusion=fusion,
            in_channels=8,
            channels=16,
            num_classes=2,
            in_index=0,
            norm_cfg=dict(type='BN'),
        )
    )
    a, b = torch.randn(2, 8, 6, 6), torch.randn(2, 8, 6, 6)
    fused = head.fuse(a, b)
    expected = dict(concat=torch.cat([a, b], 1), diff=b - a, abs_diff=(a - b).abs())[fusion]
    torch.testing.assert_close(fused, expected, rtol=0, atol=0)
    head.eval()
    logits = head(([a], [b]))
    assert logits.shape == (2, 2, 6, 6)
    swapped = head(([b], [a]))
    if fusion == 'abs_diff':
        torch.testing.assert_close(logits, swapped)  # symmetric in the dates
    else:
        assert not torch.allclose(logits, swapped)


def _tiny_model(head):
    init_default_scope('mmseg')
    arch = {
        k: TINY_ARCH[k] for k in ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels')
    }
    return MODELS.build(
        dict(
            type='SiameseEncoderDecoder',
            data_preprocessor=dict(
                type='BitemporalDataPreProcessor', mean=[127.5] * 3, std=[64.0] * 3, size=(64, 64)
            ),
            backbone=dict(type='mmpretrain.PerAViT', arch=arch, img_size=64, out_type='featmap'),
            neck=dict(type='ChangeFeatureProjection', in_channels=64, out_channels=32),
            decode_head=head,
            test_cfg=ConfigDict(mode='whole'),
        )
    )


@pytest.mark.parametrize(
    'head',
    [
        dict(type='BITHead', in_channels=32, channels=32, decoder_head_dims=8),
        dict(
            type='FusedChangeHead',
            in_channels=32,
            channels=32,
            num_classes=2,
            in_index=0,
            norm_cfg=dict(type='BN'),
        ),
    ],
    ids=['bit', 'fused'],
)
def test_siamese_vit_learns_a_fixed_pair(head):
    """TINY PerA ViT + projection + head: logits at full size, the loss goes down."""
    torch.manual_seed(0)
    model = _tiny_model(head)
    assert model.neck([torch.zeros(1, 64, 4, 4)])[0].shape == (1, 32, 16, 16)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 6, 64, 64), generator=g, dtype=torch.uint8)
    label = (images[:, 0] > images[:, 3]).long()  # changed where date A is brighter in band 0
    samples = []
    for i in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=label[i : i + 1])
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=samples), True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss = sum(
            v for k, v in model.loss(data['inputs'], data['data_samples']).items() if 'loss' in k
        )
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        preds = model.predict(data['inputs'], data['data_samples'])
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert preds[0].seg_logits.data.shape == (2, 64, 64)
