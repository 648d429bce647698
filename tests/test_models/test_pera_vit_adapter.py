# Copyright (c) pera-mm contributors. All rights reserved.
"""Behaviour of the ViT-Adapter backbone beyond the recorded parity case."""

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

import pera_mm.models.utils.adapter_modules as adapter_modules
from pera_mm.models import PerAViT
from pera_mm.models.backbones.pera_vit_adapter import PerAViTAdapter
from pera_mm.models.utils.adapter_modules import MSDeformAttn
from pera_mm.utils.errors import PeraConfigError

TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)


def tiny_adapter(**kwargs):
    cfg = dict(
        arch=TINY_ARCH,
        pretrain_size=64,
        conv_inplane=8,
        deform_num_heads=4,
        n_points=2,
        init_values=0.5,
        layer_scale_init_value=0.1,
    )
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = PerAViTAdapter(**cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('size', [(64, 96), (128, 64)])
def test_output_shapes_and_strides(size):
    model = tiny_adapter().eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == 4
    for out, stride in zip(outs, (4, 8, 16, 32)):
        assert out.shape == (2, 64, size[0] // stride, size[1] // stride)
        assert torch.isfinite(out).all()
    # the two samples differ, so must their features
    assert not torch.allclose(outs[2][0], outs[2][1])


def test_default_interaction_indexes_and_bad_indexes():
    assert tiny_adapter().interaction_indexes == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert PerAViTAdapter._check_indexes(None, 12) == [[0, 2], [3, 5], [6, 8], [9, 11]]
    with pytest.raises(PeraConfigError, match='interaction_indexes') as err:
        tiny_adapter(interaction_indexes=[[0, 1], [3, 3], [3, 3], [3, 3]])
    assert '\n' not in str(err.value)


def test_bad_input_size_is_a_one_line_error():
    model = tiny_adapter().eval()
    with pytest.raises(PeraConfigError, match=r'divisible by 32, got \(48, 64\)') as err:
        model(torch.randn(1, 3, 48, 64))
    assert '\n' not in str(err.value)


def test_gradients_reach_vit_blocks_and_adapter_modules():
    model = tiny_adapter().train()
    # The standard init zeroes the offset and weight predictors, so the query
    # norms get no gradient at step 0; make the queries matter first.
    for m in model.modules():
        if isinstance(m, MSDeformAttn):
            torch.nn.init.normal_(m.sampling_offsets.weight, std=0.01)
            torch.nn.init.normal_(m.attention_weights.weight, std=0.01)
    outs = model(torch.randn(2, 3, 64, 96))
    sum(o.square().mean() for o in outs).backward()
    no_grad = [
        k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert no_grad == []
    for prefix in (
        'blocks.0.',
        'blocks.3.',
        'patch_embed.',
        'pos_embed',
        'spm.',
        'level_embed',
        'interactions.0.injector.attn.',
        'interactions.3.extra_extractors.1.',
        'up.',
        'norm4.',
    ):
        assert any(k.startswith(prefix) for k, _ in model.named_parameters()), prefix


def test_position_embedding_resized_on_every_forward():
    """The stored grid stays the pretraining one; the input grid gets a bicubic resize."""
    model = tiny_adapter().eval()
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 64)
    seen = []
    hook = model.patch_embed.proj.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        model(x)
    hook.remove()
    grid = model.pos_embed[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(4, 6), mode='bicubic', align_corners=False)
    tokens = seen[0].flatten(2).transpose(1, 2) + expected.flatten(2).transpose(1, 2)
    # first injector query = patch tokens + resized positions (no cls token)
    captured = []
    model.interactions[0].injector.query_norm.register_forward_hook(
        lambda m, i, o: captured.append(i[0])
    )
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(captured[0], tokens)
    assert model.pos_embed.shape == (1, 17, 64)


def test_bf16_autocast_runs_the_deformable_core_in_fp32(monkeypatch):
    model = tiny_adapter().eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
    dtypes = []
    core = adapter_modules.multi_scale_deformable_attn_pytorch

    def spy(value, shapes, locations, weights):
        dtypes.append((value.dtype, locations.dtype, weights.dtype, torch.is_autocast_enabled()))
        out = core(value, shapes, locations, weights)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(adapter_modules, 'multi_scale_deformable_attn_pytorch', spy)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    # 4 injectors + 4 extractors + 2 extra extractors, each: inputs then output
    assert len(dtypes) == 20
    assert all(d == (torch.float32,) * 3 + (False,) for d in dtypes[::2])
    assert all(d == torch.float32 for d in dtypes[1::2])
    for out, r in zip(outs, ref):
        assert out.shape == r.shape
        err = ((out.float() - r).norm() / r.norm()).item()
        assert err < 0.05, err


def test_bf16_autocast_backward():
    model = tiny_adapter().train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    sum(o.float().square().mean() for o in outs).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert model.interactions[0].injector.attn.sampling_offsets.weight.grad.abs().sum() > 0


def test_cpu_never_calls_the_compiled_kernel(monkeypatch):
    class Forbidden:
        @staticmethod
        def apply(*args):
            raise AssertionError('compiled deformable attention called on CPU tensors')

    monkeypatch.setattr(adapter_modules, 'MultiScaleDeformableAttnFunction', Forbidden)
    model = tiny_adapter().eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))


def test_deformable_attention_adds_no_residual():
    """A zero output projection gives exactly zero: the caller owns the residual."""
    attn = MSDeformAttn(32, num_levels=1, num_heads=4, num_points=2)
    attn.init_weights()
    torch.nn.init.zeros_(attn.output_proj.weight)
    q = torch.randn(2, 6, 32)
    ref = torch.rand(1, 6, 1, 2)
    shapes = torch.tensor([[2, 3]])
    start = torch.tensor([0])
    out = attn(q, ref, torch.randn(2, 6, 32), shapes, start)
    torch.testing.assert_close(out, attn.output_proj.bias.expand(2, 6, 32))


def test_deformable_attention_samples_the_value_at_the_reference_point():
    """Zero offsets, one point: the output is the value projection at the reference cell."""
    attn = MSDeformAttn(8, num_levels=1, num_heads=2, num_points=1)
    attn.init_weights()
    torch.nn.init.zeros_(attn.sampling_offsets.bias)
    with torch.no_grad():
        attn.output_proj.weight.copy_(torch.eye(8))
        attn.output_proj.bias.zero_()
    value = torch.randn(1, 6, 8)  # a 2 x 3 grid
    ref = torch.tensor([[[[(2 + 0.5) / 3, (1 + 0.5) / 2]]]])  # centre of cell (row 1, col 2)
    out = attn(torch.randn(1, 1, 8), ref, value, torch.tensor([[2, 3]]), torch.tensor([0]))
    torch.testing.assert_close(out[0, 0], attn.value_proj(value)[0, 5])


def test_with_cp_gives_the_same_gradients():
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for with_cp in (False, True):
        model = tiny_adapter(with_cp=with_cp).eval()
        sum(o.sum() for o in model(x)).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
    for key, g in grads[0].items():
        torch.testing.assert_close(grads[1][key], g, msg=key)


def test_pretraining_backbone_weights_load_with_the_same_keys():
    torch.manual_seed(1)
    vit = PerAViT(arch=TINY_ARCH, img_size=64, layer_scale_init_value=0.1)
    vit.init_weights()
    model = tiny_adapter()
    state = {
        k: v for k, v in vit.state_dict().items() if k != 'cls_token' and not k.startswith('norm.')
    }
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == []
    assert all(
        not k.startswith(('blocks.', 'patch_embed.', 'pos_embed')) for k in result.missing_keys
    )
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_position_grid_of_another_checkpoint_is_resampled_at_load():
    model = tiny_adapter()
    other = torch.randn(1, 1 + 8 * 8, 64)
    model.load_state_dict({'pos_embed': other}, strict=False)
    assert model.pos_embed.shape == (1, 17, 64)
    torch.testing.assert_close(model.pos_embed[:, :1], other[:, :1])


@pytest.mark.parametrize(
    'registry,type_name',
    [
        (MODELS, 'PerAViTAdapter'),
        (SEG_MODELS, 'PerAViTAdapter'),
        (SEG_MODELS, 'mmseg.PerAViTAdapter'),
        (DET_MODELS, 'mmdet.PerAViTAdapter'),
    ],
)
def test_registered_in_pretrain_seg_and_det(registry, type_name):
    model = registry.build(
        dict(type=type_name, arch=TINY_ARCH, pretrain_size=64, conv_inplane=8, deform_num_heads=4)
    )
    assert isinstance(model, PerAViTAdapter)


def test_drop_path_is_stochastic_in_training_only():
    model = tiny_adapter(drop_path_rate=0.5)
    assert all(blk.drop_path == 0.5 and blk.drop_path_mode == 'row' for blk in model.blocks)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    torch.manual_seed(3)
    a = model(x)[2]
    torch.manual_seed(4)
    b = model(x)[2]
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[2], model(x)[2])


def test_patch_14_tokens_fall_on_the_16_grid():
    """Patch 14: the patch embedding sees the input resized by 14/16, the SPM the input."""
    model = tiny_adapter(patch_size=14, pretrain_size=56).eval()
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 64)
    x = torch.randn(2, 3, 64, 96)
    seen = {}
    model.patch_embed.proj.register_forward_hook(lambda m, i, o: seen.update(vit=(i[0], o)))
    model.spm.stem.register_forward_hook(lambda m, i, o: seen.update(spm=i[0]))
    with torch.no_grad():
        outs = model(x)
    vit_in, tokens = seen['vit']
    torch.testing.assert_close(
        vit_in, F.interpolate(x, size=(56, 84), mode='bilinear', align_corners=False)
    )
    assert tokens.shape[-2:] == (4, 6)  # = (64 / 16, 96 / 16)
    assert torch.equal(seen['spm'], x)
    for out, stride in zip(outs, (4, 8, 16, 32)):
        assert out.shape == (2, 64, 64 // stride, 96 // stride)
