# Copyright (c) pera-mm contributors. All rights reserved.
"""Replay the recorded forward/backward of the reference BIT (``../shared/design/parity-bit.md``).

``d['head']``: the BIT head alone on two fixed random 32-channel maps at 1/4 resolution.
``d['full']``: the whole BIT-R18 model on two real LEVIR-CD pairs. Every weight is random,
so every path contributes. Our ``BITHead`` (and, for the full record, ``BITResNet18`` in a
``SiameseEncoderDecoder`` fed through ``BitemporalDataPreProcessor``) is loaded through the
name map below and must match every recorded tensor within 1e-5 relative L2. A gradient
that is exactly 0 in the record (the last decoder FFN bias, which cancels in |d1 - d2|) is
judged by |ours| / median recorded gradient norm.
"""

import re
from functools import partial

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope

from pera_mm.models.data_preprocessors import BitemporalDataPreProcessor
from pera_mm.models.heads import BITHead
from pera_mm.models.segmentors import SiameseEncoderDecoder
from pera_mm.testing.parity import relative_error

TOL = 1e-5
NUM_HEAD_GRADS = 122
NUM_FULL_GRADS = 121

_HEAD_RULES = [
    (r'^conv_a\.', 'token_conv.'),
    (r'^pos_embedding$', 'pos_embed'),
    (r'^classifier\.0\.', 'cls_conv.'),
    (r'^classifier\.1\.', 'cls_norm.'),
    (r'^classifier\.3\.', 'conv_seg.'),
    (r'^transformer_decoder\.', 'decoder.'),
    (r'^transformer\.', 'encoder.'),
    (r'\.0\.fn\.norm\.', '.norm1.'),
    (r'\.1\.fn\.norm\.', '.norm2.'),
    (r'\.0\.fn\.fn\.to_qkv\.', '.attn.qkv.'),
    (r'\.0\.fn\.fn\.to_([qkv])\.', r'.attn.\1.'),
    (r'\.0\.fn\.fn\.to_out\.0\.', '.attn.proj.'),
    (r'\.1\.fn\.fn\.net\.0\.', '.ffn.fc1.'),
    (r'\.1\.fn\.fn\.net\.3\.', '.ffn.fc2.'),
]


def head_key(ref_key: str) -> str:
    """Our ``BITHead`` name of a reference ``BASE_Transformer`` head entry."""
    key = ref_key
    for pattern, repl in _HEAD_RULES:
        key = re.sub(pattern, repl, key)
    return key


def full_key(ref_key: str) -> str:
    """Our ``SiameseEncoderDecoder`` name of a reference BIT-R18 entry."""
    if ref_key.startswith('resnet.'):
        return 'backbone.' + ref_key[len('resnet.') :]
    if ref_key.startswith('conv_pred.'):
        return 'backbone.' + ref_key
    return 'decode_head.' + head_key(ref_key)


rel_l2 = partial(relative_error, eps=1e-30)


def gradient_errors(params, ref_grads, key_map):
    """Relative L2 per gradient; a gradient recorded as exactly 0 as |ours| / median norm."""
    median = torch.stack([g.double().norm() for g in ref_grads.values()]).median()
    errors = {}
    for ref_key, ref in ref_grads.items():
        ours = params[key_map(ref_key)].grad
        assert ours is not None, f'{ref_key}: no gradient'
        if ref.abs().max() == 0:
            errors[ref_key] = (ours.double().norm() / median).item()
        else:
            errors[ref_key] = rel_l2(ours, ref)
    return errors


def head_cfg_from_record(cfg) -> dict:
    """Our head's config with the record's settings (parity-bit.md, "Setting")."""
    return dict(
        type='BITHead',
        in_channels=cfg['dim'],
        channels=cfg['dim'],
        num_classes=2,
        token_len=cfg['token_len'],
        enc_depth=cfg['enc_depth'],
        dec_depth=cfg['dec_depth'],
        num_heads=cfg['enc_heads'],
        head_dims=cfg['enc_dim_head'],
        decoder_head_dims=cfg['dec_dim_head'],
        mlp_ratio=cfg['mlp_dim'] / cfg['dim'],
        with_pos_embed=cfg['with_pos'] == 'learned',
        upsample_factor=cfg['upsample_factor'],
    )


def head_from_config(cfg) -> BITHead:
    head_cfg = head_cfg_from_record(cfg)
    head_cfg.pop('type')
    return BITHead(**head_cfg)


@pytest.fixture(scope='module')
def record(shared_path):
    return torch.load(shared_path('parity/bit_parity_v1.pt'), weights_only=True)


@pytest.fixture(scope='module')
def head_replay(record):
    return replay_head(record)


def replay_head(record):
    """Our head with the record's weights, forward + backward in eval mode (2 threads)."""
    rec = record['head']
    head = head_from_config(rec['config'])
    result = head.load_state_dict({head_key(k): v for k, v in rec['state_dict'].items()})
    assert not result.missing_keys and not result.unexpected_keys
    head.eval()
    x1 = rec['x1'].float().requires_grad_(True)
    x2 = rec['x2'].float().requires_grad_(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(rec['config']['threads'])
    try:
        out, inter = head.forward_pair(x1, x2, return_intermediates=True)
        loss = (out * rec['output_weight'].float()).sum()
        loss.backward()
    finally:
        torch.set_num_threads(threads)
    return dict(head=head, output=out, loss=loss, x1_grad=x1.grad, x2_grad=x2.grad, **inter)


@pytest.mark.needs_shared
def test_head_name_map_is_one_to_one(record):
    rec = record['head']
    head = head_from_config(rec['config'])
    mapped = {head_key(k): v for k, v in rec['state_dict'].items()}
    assert len(mapped) == len(rec['state_dict']) == 125
    assert set(mapped) == set(head.state_dict())
    for key, value in mapped.items():
        assert head.state_dict()[key].shape == value.shape, key
    trainable = {k for k, p in head.named_parameters() if p.requires_grad}
    assert {head_key(k) for k in rec['grads']} == trainable
    assert len(rec['grads']) == NUM_HEAD_GRADS
    assert sum(p.numel() for p in head.parameters()) == 639234


@pytest.mark.needs_shared
def test_head_intermediates_output_and_loss_match(record, head_replay):
    rec = record['head']
    tokens_plus_pos = torch.cat([head_replay['tokens1'], head_replay['tokens2']], 1)
    tokens_plus_pos = tokens_plus_pos + head_replay['head'].pos_embed
    assert rel_l2(tokens_plus_pos.detach(), rec['tokens_plus_pos']) < TOL
    for name in (
        'tokens1',
        'tokens2',
        'tokens_after_encoder',
        'decoded1',
        'decoded2',
        'output',
    ):
        ours = head_replay[name].detach()
        assert ours.shape == rec[name].shape, name
        err = rel_l2(ours, rec[name])
        assert err < TOL, f'{name}: relative L2 {err:.2e}'
    out = head_replay['output']
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-1.4106025, -0.8338330]), atol=1e-5)
    assert abs(head_replay['loss'].item() - rec['loss_fp64']) <= TOL * abs(rec['loss_fp64'])


@pytest.mark.needs_shared
def test_head_forward_equals_forward_pair(record, head_replay):
    """The mmseg entry point ``forward((feats_a, feats_b))`` is the same computation."""
    rec = record['head']
    head = head_replay['head']
    with torch.no_grad():
        out = head.forward(([rec['x1'].float()], [rec['x2'].float()]))
    assert rel_l2(out, rec['output']) < TOL


@pytest.mark.needs_shared
def test_head_input_gradients_match(record, head_replay):
    rec = record['head']
    for name in ('x1_grad', 'x2_grad'):
        err = rel_l2(head_replay[name], rec[name])
        assert err < TOL, f'{name}: relative L2 {err:.2e}'
    # a common shift of both inputs cancels: mean(x1_grad) = -mean(x2_grad)
    m1, m2 = head_replay['x1_grad'].mean().item(), head_replay['x2_grad'].mean().item()
    assert m1 == pytest.approx(-m2, rel=1e-3)


@pytest.mark.needs_shared
def test_head_every_parameter_gradient_matches(record, head_replay):
    rec = record['head']
    params = dict(head_replay['head'].named_parameters())
    errors = gradient_errors(params, rec['grads'], head_key)
    assert len(errors) == NUM_HEAD_GRADS
    zero = [k for k, g in rec['grads'].items() if g.abs().max() == 0]
    assert zero == ['transformer_decoder.layers.7.1.fn.fn.net.3.bias']
    bad = {k: f'{e:.2e}' for k, e in errors.items() if not e < TOL}
    assert not bad, f'{len(bad)} gradient(s) off: {bad}'
    ref_bias = rec['grads']['classifier.3.bias']
    assert torch.allclose(params['conv_seg.bias'].grad, ref_bias, rtol=1e-5)


@pytest.mark.needs_shared
def test_released_levir_setting_decoder_head_dims_8(record):
    """``base_transformer_pos_s4_dd8_dedim8``: only the decoder's projections change shape."""
    cfg = dict(record['head']['config'], dec_dim_head=8)
    head = head_from_config(cfg)
    layer = head.decoder.layers[0].attn
    for name in ('q', 'k', 'v'):
        assert getattr(layer, name).weight.shape == (64, 32)
    assert layer.proj.weight.shape == (32, 64)
    assert head.encoder.layers[0].attn.qkv.weight.shape == (1536, 32)
    x = torch.randn(1, 32, 8, 8)
    assert head.eval().forward_pair(x, x.flip(-1)).shape == (1, 2, 32, 32)


def full_model(decode_head_cfg) -> SiameseEncoderDecoder:
    """BIT-R18 as ours: the reference trunk, our BIT head and BIT's input normalisation."""
    with DefaultScope.overwrite_default_scope('mmseg'):  # BaseModel builds its preprocessor
        return SiameseEncoderDecoder(
            data_preprocessor=dict(
                type='BitemporalDataPreProcessor', pixel_scale=255.0, mean=[0.5] * 3, std=[0.5] * 3
            ),
            backbone=dict(type='BITResNet18', in_channels=3, out_channels=32, num_stages=4),
            decode_head=decode_head_cfg,
            test_cfg=ConfigDict(mode='whole'),
        )


@pytest.fixture(scope='module')
def full_replay(record):
    return replay_full(record)


def replay_full(record):
    """BIT-R18 with the record's weights on the recorded pairs, forward + backward, eval mode."""
    rec = record['full']
    cfg = rec['config']
    model = full_model(head_cfg_from_record(cfg))
    result = model.load_state_dict({full_key(k): v for k, v in rec['state_dict'].items()})
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()

    img1, img2 = rec['img1_uint8'], rec['img2_uint8']
    data = dict(inputs=[torch.cat([a, b]) for a, b in zip(img1, img2)], data_samples=None)
    inputs = model.data_preprocessor(data, training=False)['inputs']
    inputs = inputs.detach().requires_grad_(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg['threads'])
    try:
        feats_a, feats_b = model.extract_feat(inputs)
        out, inter = model.decode_head.forward_pair(
            feats_a[0], feats_b[0], return_intermediates=True
        )
        loss = (out * rec['output_weight'].float()).sum()
        loss.backward()
    finally:
        torch.set_num_threads(threads)
    return dict(
        model=model,
        img1=img1,
        img2=img2,
        inputs=inputs,
        features=(feats_a[0], feats_b[0]),
        output=out,
        loss=loss,
        **inter,
    )


@pytest.mark.needs_shared
def test_full_name_map_is_one_to_one(record):
    rec = record['full']
    model = full_model(dict(type='BITHead'))  # the defaults are the record's setting
    mapped = {full_key(k): v for k, v in rec['state_dict'].items()}
    assert len(mapped) == len(rec['state_dict']) == 217
    assert set(mapped) == set(model.state_dict())
    for key, value in mapped.items():
        assert model.state_dict()[key].shape == value.shape, key
    assert sum(v.numel() for v in mapped.values() if v.is_floating_point()) >= 3_500_000
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel()
        for k, v in rec['state_dict'].items()
        if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
    )


@pytest.mark.needs_shared
def test_full_input_normalisation_is_bit_exact(full_replay):
    """``(u / 255 - 0.5) / 0.5`` in fp32, in that order (torchvision to_tensor + normalize)."""
    expected = torch.cat([full_replay['img1'], full_replay['img2']], dim=1).float()
    expected = (expected.div(255) - 0.5) / 0.5
    assert torch.equal(full_replay['inputs'].detach(), expected)


@pytest.mark.needs_shared
def test_full_features_tokens_and_output_match(record, full_replay):
    rec = record['full']
    f1, f2 = full_replay['features']
    assert f1.shape == f2.shape == (2, 32, 64, 64)
    assert f1.norm().item() == pytest.approx(rec['features1_norm'], rel=1e-6)
    assert f2.norm().item() == pytest.approx(rec['features2_norm'], rel=1e-6)
    for name in ('tokens1', 'tokens2', 'tokens_after_encoder', 'output'):
        err = rel_l2(full_replay[name].detach(), rec[name])
        assert err < TOL, f'{name}: relative L2 {err:.2e}'
    assert abs(full_replay['loss'].item() - rec['loss_fp64']) <= TOL * abs(rec['loss_fp64'])


@pytest.mark.needs_shared
def test_full_predict_agrees_with_record(record, full_replay):
    """The segmentor's own inference path gives the recorded logits and their argmax."""
    rec = record['full']
    model = full_replay['model']
    with torch.no_grad():
        samples = model.predict(full_replay['inputs'].detach())
    logits = torch.stack([s.seg_logits.data for s in samples])
    assert rel_l2(logits, rec['output']) < TOL
    pred = torch.stack([s.pred_sem_seg.data[0] for s in samples])
    ref = rec['output'].argmax(1)
    margin = (rec['output'][:, 1] - rec['output'][:, 0]).abs()
    assert torch.equal(pred[margin > 1e-4], ref[margin > 1e-4])


@pytest.mark.needs_shared
def test_full_input_gradients_match(record, full_replay):
    rec = record['full']
    grad = full_replay['inputs'].grad
    for name, ours in (('x1_grad', grad[:, :3]), ('x2_grad', grad[:, 3:])):
        err = rel_l2(ours, rec[name])
        assert err < TOL, f'{name}: relative L2 {err:.2e}'


@pytest.mark.needs_shared
def test_full_recorded_parameter_gradients_match(record, full_replay):
    rec = record['full']
    params = dict(full_replay['model'].named_parameters())
    errors = gradient_errors(params, rec['grads'], full_key)
    assert len(errors) == NUM_FULL_GRADS
    assert 'resnet.conv1.weight' in errors  # backprop through the whole trunk
    bad = {k: f'{e:.2e}' for k, e in errors.items() if not e < TOL}
    assert not bad, f'{len(bad)} gradient(s) off: {bad}'


@pytest.mark.needs_shared
def test_mmseg_normalisation_moves_x2_grad(record, full_replay):
    """MMSeg's ``(u - 127.5) / 127.5`` is not BIT's: rounding differs on most values."""
    prep = BitemporalDataPreProcessor(mean=[127.5] * 3, std=[127.5] * 3)
    data = dict(
        inputs=[torch.cat([a, b]) for a, b in zip(full_replay['img1'], full_replay['img2'])]
    )
    mmseg_inputs = prep(data)['inputs']
    bit_inputs = full_replay['inputs'].detach()
    differs = (mmseg_inputs != bit_inputs).float().mean().item()
    assert differs > 0.5
    assert (mmseg_inputs - bit_inputs).abs().max().item() < 1e-7


@pytest.mark.needs_shared
def test_record_catches_the_head_dim_scaling_mistake(record, head_replay):
    """Negative control: ``head_dims ** -0.5`` instead of ``dim ** -0.5`` is far off."""
    rec = record['head']
    head = head_from_config(rec['config'])
    head.load_state_dict(head_replay['head'].state_dict())
    head.eval()
    for module in head.modules():
        if hasattr(module, 'scale'):
            module.scale = rec['config']['enc_dim_head'] ** -0.5
    with torch.no_grad():
        out = head.forward_pair(rec['x1'].float(), rec['x2'].float())
    assert rel_l2(out, rec['output']) > 100 * TOL
