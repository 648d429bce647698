# Copyright (c) pera-mm contributors. All rights reserved.
"""Replay one recorded forward/backward of the reference ViT-Adapter backbone.

The record (``../shared/design/parity.md``, "Numerical parity with the reference
ViT-Adapter") holds random weights in the reference layout, an input, the four
outputs, a fixed linear loss on them, the input gradient and all 268 parameter
gradients. Our ``PerAViTAdapter``, loaded through the name map, must match each
tensor within 1e-5 relative L2.
"""

from functools import partial

import pytest
import torch

from pera_mm.models.backbones.pera_vit_adapter import PerAViTAdapter
from pera_mm.testing.parity import relative_error
from pera_mm.utils.adapter_checkpoint import convert_adapter_reference, load_adapter_reference

TOL = 1e-5
NUM_GRADS = 268


rel_l2 = partial(relative_error, eps=1e-30)


def build_from_record(cfg):
    """Our adapter with the record's settings (parity.md, "Setting")."""
    dim = cfg['embed_dim']
    return PerAViTAdapter(
        arch=dict(
            embed_dims=dim,
            num_layers=cfg['depth'],
            num_heads=cfg['num_heads'],
            feedforward_channels=dim * cfg['mlp_ratio'],
        ),
        pretrain_size=cfg['pretrain_size'],
        patch_size=cfg['patch_size'],
        qkv_bias=cfg['qkv_bias'],
        drop_path_rate=cfg['drop_path_rate'],
        # LayerScale on: any positive value creates the gammas the record overwrites
        layer_scale_init_value=1.0 if cfg['layer_scale'] else 0.0,
        conv_inplane=cfg['conv_inplane'],
        n_points=cfg['n_points'],
        deform_num_heads=cfg['deform_num_heads'],
        init_values=cfg['init_values'],
        interaction_indexes=cfg['interaction_indexes'],
        with_cffn=cfg['with_cffn'],
        cffn_ratio=cfg['cffn_ratio'],
        deform_ratio=cfg['deform_ratio'],
        add_vit_feature=cfg['add_vit_feature'],
        use_extra_extractor=cfg['use_extra_extractor'],
        norm_cfg=dict(type='BN'),
    )


@pytest.fixture(scope='module')
def record(shared_path):
    return torch.load(shared_path('parity/vit_adapter_parity_v1.pt'), weights_only=True)


@pytest.fixture(scope='module')
def replay(record):
    """Load the record's weights, run forward + backward in eval mode."""
    model = build_from_record(record['config'])
    load_adapter_reference(model, record['state_dict'])
    model.eval()
    x = record['input'].clone().requires_grad_(True)
    outs = model(x)
    loss = sum((o * w).sum() for o, w in zip(outs, record['output_weights']))
    loss.backward()
    return model, outs, loss, x.grad


@pytest.mark.needs_shared
def test_name_map_covers_every_entry(record):
    model = build_from_record(record['config'])
    mapped, unmapped = convert_adapter_reference(record['state_dict'])
    assert unmapped == []
    assert len(mapped) == len(record['state_dict'])
    # one-to-one with our state: nothing of ours left at its init, nothing of theirs dropped
    assert set(mapped) == set(model.state_dict())
    for key, value in mapped.items():
        assert model.state_dict()[key].shape == value.shape, key
    grads, unmapped = convert_adapter_reference(record['grads'])
    assert unmapped == [] and len(grads) == NUM_GRADS
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert set(grads) == trainable


@pytest.mark.needs_shared
def test_loaded_weights_equal_the_record(record, replay):
    model = replay[0]
    mapped, _ = convert_adapter_reference(record['state_dict'])
    state = model.state_dict()
    for key, value in mapped.items():
        assert torch.equal(state[key], value), key


@pytest.mark.needs_shared
def test_outputs_and_loss_match(record, replay):
    _, outs, loss, _ = replay
    assert len(outs) == len(record['outputs']) == 4
    for i, (ours, ref) in enumerate(zip(outs, record['outputs'])):
        assert ours.shape == ref.shape, f'output {i}: {ours.shape} != {ref.shape}'
        err = rel_l2(ours.detach(), ref)
        assert err < TOL, f'output {i}: relative L2 {err:.2e}'
    assert abs(loss.item() - record['loss'].item()) <= TOL * abs(record['loss'].item())


@pytest.mark.needs_shared
def test_input_gradient_matches(record, replay):
    err = rel_l2(replay[3], record['input_grad'])
    assert err < TOL, f'input gradient: relative L2 {err:.2e}'


@pytest.mark.needs_shared
def test_every_parameter_gradient_matches(record, replay):
    model = replay[0]
    grads, _ = convert_adapter_reference(record['grads'])
    params = dict(model.named_parameters())
    errors = {}
    for key, ref in grads.items():
        assert params[key].grad is not None, f'{key}: no gradient'
        errors[key] = rel_l2(params[key].grad, ref)
    bad = {k: f'{e:.2e}' for k, e in errors.items() if not e < TOL}
    assert not bad, f'{len(bad)} gradient(s) off: {bad}'
    assert len(errors) == NUM_GRADS
