"""Converters of public weights: official DINOv2 / DINOv3 layouts, MMPretrain,
key report and bad input, FlexiViT patch-embedding resize, the CLI."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from pera_mm.models.backbones import PerAViT
from pera_mm.testing.paths import REPO_ROOT
from pera_mm.utils.checkpoint_convert import pera_vit_to_mmpretrain
from pera_mm.utils.public_weights import (
    PublicWeightsError,
    _resize_matrix,
    convert_public_weights,
    load_public_weights,
    read_weights,
    resize_patch_embed,
)
from pera_mm.utils.public_weights_manifests import (
    DINOV2_MODELS,
    DINOV3_MODELS,
)

from .public_weights_helpers import checkpoint_from_manifest

TOOL = REPO_ROOT / 'tools' / 'model_converters' / 'public_weights_to_pera.py'


def build_vit(**cfg):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return PerAViT(**cfg).eval()


@pytest.mark.parametrize('name', list(DINOV2_MODELS))
def test_official_dinov2_layout_converts_with_zero_missing_keys(name):
    ckpt = checkpoint_from_manifest(name)
    weights, report = convert_public_weights(ckpt, 'dinov2', source=name)
    C, depth, heads, registers = DINOV2_MODELS[name]
    cfg = report['cfg']
    assert report['missing'] == [] and report['unexpected'] == []
    assert report['dropped'] == {'mask_token': 'pretraining mask token (PerA learns its own)'}
    assert cfg['arch'] == dict(
        embed_dims=C, num_layers=depth, num_heads=heads, feedforward_channels=4 * C
    )
    assert (cfg['img_size'], cfg['patch_size'], cfg['pos_embed_layout']) == (518, 14, 'cls_slot')
    assert (cfg['pos_resize'], cfg['interpolate_offset']) == ('offset', 0.1)
    assert cfg['num_register_tokens'] == registers and cfg['qkv_bias'] is True
    assert len(weights) == len(ckpt) - 1


@pytest.mark.parametrize('name', list(DINOV3_MODELS))
def test_official_dinov3_layout_converts_with_zero_missing_keys(name):
    ckpt = checkpoint_from_manifest(name)
    weights, report = convert_public_weights(ckpt, 'dinov3', source=name)
    C, depth, heads, ffn, _, sat = DINOV3_MODELS[name]
    cfg = report['cfg']
    assert report['missing'] == [] and report['unexpected'] == []
    dropped = set(report['dropped'])
    assert {'mask_token', 'rope_embed.periods', 'blocks.0.attn.qkv.bias_mask'} <= dropped
    assert 'blocks.0.attn.qkv.bias[k]' in dropped
    assert ('local_cls_norm.weight' in dropped) == sat
    assert cfg['pos_embed_layout'] == 'none' and cfg['rope'] == dict(base=100.0, rescale_coords=2)
    assert (cfg['num_register_tokens'], cfg['norm_eps'], cfg['qkv_bias']) == (4, 1e-5, 'qv')
    assert cfg['mlp_type'] == ffn and cfg['arch']['num_heads'] == heads
    if ffn == 'swiglu':  # int(2/3 * 6 * 384) = 1536
        assert cfg['arch']['feedforward_channels'] == 1536
    assert 'blocks.0.attn.q_bias' in weights and 'blocks.0.attn.qkv.bias' not in weights


def test_official_dinov3_values_land_in_place():
    """Values, not only keys: storage tokens, the q / v thirds of the masked
    qkv bias, SwiGLU w1 / w2 / w3 -> gate / value / out; the result loads."""
    ckpt = checkpoint_from_manifest('dinov3_vits16plus', real=True)
    weights, report = convert_public_weights(ckpt, 'dinov3')
    bias = ckpt['blocks.3.attn.qkv.bias']
    assert torch.equal(weights['blocks.3.attn.q_bias'], bias[:384])
    assert torch.equal(weights['blocks.3.attn.v_bias'], bias[768:])
    assert torch.equal(weights['register_tokens'], ckpt['storage_tokens'])
    for ours, theirs in (('fc1_g', 'w1'), ('fc1_x', 'w2'), ('fc2', 'w3')):
        assert torch.equal(
            weights[f'blocks.5.mlp.{ours}.weight'], ckpt[f'blocks.5.mlp.{theirs}.weight']
        )
    vit = build_vit(**report['cfg'])
    assert vit.load_state_dict(weights, strict=True).missing_keys == []
    x = torch.randn(1, 3, 32, 48)
    assert vit.forward_features(x)[2].shape == (1, 6, 384)


def test_unknown_key_fails_with_its_name():
    ckpt = checkpoint_from_manifest('dinov2_vits14')
    ckpt['blocks.0.attn.q_norm.weight'] = torch.empty(64, device='meta')
    with pytest.raises(PublicWeightsError, match=r'blocks\.0\.attn\.q_norm\.weight is unexpected'):
        convert_public_weights(ckpt, 'dinov2')
    _, report = convert_public_weights(ckpt, 'dinov2', strict=False)
    assert report['unexpected'] == ['blocks.0.attn.q_norm.weight']


def test_unknown_layout_lists_the_known_ones():
    with pytest.raises(PublicWeightsError) as err:
        convert_public_weights({}, 'dinov5')
    assert str(err.value) == (
        "unknown layout 'dinov5'; known layouts: timm, dinov2, dinov3, mmpretrain"
    )


def test_width_and_depth_mismatch_name_the_first_mismatching_key():
    ckpt = checkpoint_from_manifest('dinov2_vits14', real=True)
    wider = build_vit(arch='base', img_size=518, patch_size=14, layer_scale_init_value=1e-5)
    with pytest.raises(PublicWeightsError) as err:
        convert_public_weights(ckpt, 'dinov2', model=wider, source='s.pth')
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith('s.pth: cls_token has shape (1, 1, 384)')
    assert 'expects (1, 1, 768)' in msg
    deeper = build_vit(
        arch=dict(embed_dims=384, num_layers=13, num_heads=6, feedforward_channels=1536),
        img_size=518,
        patch_size=14,
        layer_scale_init_value=1e-5,
    )
    with pytest.raises(PublicWeightsError, match=r'blocks\.12\.norm1\.weight \(384,\) of the'):
        convert_public_weights(ckpt, 'dinov2', model=deeper)
    shallower = build_vit(
        arch=dict(embed_dims=384, num_layers=11, num_heads=6, feedforward_channels=1536),
        img_size=518,
        patch_size=14,
        layer_scale_init_value=1e-5,
    )
    with pytest.raises(PublicWeightsError, match=r'blocks\.11\.norm1\.weight is unexpected'):
        convert_public_weights(ckpt, 'dinov2', model=shallower)


def test_mmpretrain_vision_transformer_round_trip():
    vit = build_vit(arch='small', img_size=64, layer_scale_init_value=0.1)
    for p in vit.parameters():
        torch.nn.init.normal_(p)
    ours = vit.state_dict()
    mm = {f'backbone.{k}': v for k, v in pera_vit_to_mmpretrain(ours).items()}
    mm['head.layers.head.weight'] = torch.zeros(10, 384)
    weights, report = convert_public_weights(mm, 'mmpretrain')
    assert report['dropped'] == {'head.layers.head.weight': 'not part of the backbone'}
    assert (report['cfg']['pos_resize'], report['cfg']['interpolate_offset']) == ('offset', 0.0)
    assert list(weights) == list(ours)
    assert all(torch.equal(weights[k], ours[k]) for k in ours)


def test_patch_embed_pseudo_inverse_resize_hand_built():
    """1 -> 2 px by hand: bilinear upsampling copies a pixel to 2x2, so B^T = [1 1 1 1]
    and pinv(B^T) = 1/4: a weight 8 becomes four weights 2 and <Bx, w'> = <x, w>."""
    w = torch.tensor([[[[8.0]]]])
    assert torch.equal(resize_patch_embed(w, 2), torch.full((1, 1, 2, 2), 2.0))


def test_patch_embed_resize_14_to_16_keeps_every_token():
    """Upsampling: a 14-px patch and its bilinear 16-px resize give the same token."""
    torch.manual_seed(0)
    w14, b = torch.randn(8, 3, 14, 14), torch.randn(8)
    w16 = resize_patch_embed(w14, 16)
    patches = torch.randn(5, 3, 14, 14)
    up = F.interpolate(patches.double(), size=(16, 16), mode='bilinear', align_corners=False)
    ref = F.conv2d(patches, w14, b, stride=14)
    torch.testing.assert_close(F.conv2d(up.float(), w16, b, stride=16), ref, atol=1e-4, rtol=1e-5)
    # 16 -> 14 is the least-squares solution of B^T w' = w: normal equations hold
    back = resize_patch_embed(w16.double(), 14).reshape(-1, 196)
    B = _resize_matrix(16, 14)
    normal = (back @ B - w16.double().reshape(-1, 256)) @ B.T
    torch.testing.assert_close(normal, torch.zeros_like(normal), atol=1e-9, rtol=0)


def test_converting_to_another_patch_size_reports_the_reshapes():
    ckpt = checkpoint_from_manifest('dinov2_vits14', real=True)
    weights, report = convert_public_weights(
        ckpt, 'dinov2', cfg_overrides=dict(patch_size=16, img_size=224)
    )
    assert report['reshaped'] == {
        'pos_embed': '(1, 1370, 384) -> (1, 197, 384)',
        'patch_embed.proj.weight': '(384, 3, 14, 14) -> (384, 3, 16, 16)',
    }
    assert weights['patch_embed.proj.weight'].shape == (384, 3, 16, 16)


def test_cli_writes_pth_and_safetensors_and_reports(tmp_path):
    from safetensors.torch import save_file

    sys.path.insert(0, str(TOOL.parent))
    import public_weights_to_pera as tool

    ckpt = checkpoint_from_manifest('dinov3_vits16', real=True)
    src = tmp_path / 'dinov3_vits16.safetensors'
    save_file(ckpt, str(src))
    dst, report_path = tmp_path / 'pera.pth', tmp_path / 'report.json'
    tool.main([str(src), str(dst), '--layout', 'dinov3', '--report', str(report_path)])
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['pera_vit']['rope'] == dict(base=100.0, rescale_coords=2)
    report = json.loads(report_path.read_text())
    assert report['missing'] == [] and len(report['loaded']) == len(saved['state_dict'])
    # the .pth output converts again (memory-mapped read) and loads into the model
    vit = build_vit(**saved['meta']['pera_vit'])
    pth_src = tmp_path / 'plain.pth'
    torch.save(ckpt, pth_src)
    assert load_public_weights(vit, str(pth_src), 'dinov3')['missing'] == []
    torch.testing.assert_close(vit.register_tokens, ckpt['storage_tokens'])
    out_st = tmp_path / 'pera.safetensors'
    tool.main([str(pth_src), str(out_st), '--layout', 'dinov3'])
    assert set(read_weights(str(out_st))) == set(saved['state_dict'])
    with pytest.raises(SystemExit) as err:
        tool.main([str(src), str(dst), '--layout', 'dinov9'])
    assert str(err.value) == (
        "error: unknown layout 'dinov9'; known layouts: timm, dinov2, dinov3, mmpretrain"
    )
    with pytest.raises(SystemExit, match='no such file'):
        tool.main([str(tmp_path / 'missing.pth'), str(dst), '--layout', 'timm'])


def test_cli_help():
    out = subprocess.run(
        [sys.executable, str(TOOL), '--help'], capture_output=True, text=True, check=True
    )
    assert '--layout' in out.stdout and '--report' in out.stdout
