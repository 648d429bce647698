# Copyright (c) pera-mm contributors. All rights reserved.
"""Pretrained loading of ``PerAViT`` / ``PerAViTAdapter`` from every PerA layout."""

from collections import OrderedDict

import pytest
import torch

from pera_mm.models.backbones.pera_vit import PerAViT
from pera_mm.models.backbones.pera_vit_adapter import PerAViTAdapter
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.config_shrink import TINY_ARCH, build_small_model
from pera_mm.utils.backbone_checkpoint import is_vit_key, load_vit_checkpoint
from pera_mm.utils.checkpoint_convert import extract_backbone, save_weights_file
from pera_mm.utils.errors import PeraDataError, PeraFileNotFoundError

CONFIG = REPO_ROOT / 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'


@pytest.fixture(scope='module')
def pera_state():
    model, _ = build_small_model(CONFIG)
    state = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    # make teacher and student differ so that taking the wrong one is caught
    for key in state:
        if key.startswith('teacher.backbone.') and state[key].is_floating_point():
            state[key] += 1.0
    return state


def _teacher(state):
    p = 'teacher.backbone.'
    return OrderedDict((k[len(p) :], v) for k, v in state.items() if k.startswith(p))


def _adapter(path=None, **kwargs):
    init_cfg = dict(type='Pretrained', checkpoint=str(path)) if path else None
    ls = 'blocks.0.ls1.gamma' in kwargs.pop('teacher', {})
    return PerAViTAdapter(
        arch=TINY_ARCH,
        pretrain_size=64,
        conv_inplane=8,
        deform_num_heads=4,
        layer_scale_init_value=1e-5 if ls else 0.0,
        init_cfg=init_cfg,
        **kwargs,
    )


def _assert_vit_equal(model, teacher):
    own = model.state_dict()
    vit_keys = [k for k in own if is_vit_key(k)]
    assert vit_keys and 'blocks.3.attn.qkv.weight' in vit_keys
    for key in vit_keys:
        assert torch.equal(own[key], teacher[key]), key


def test_adapter_from_full_pera_checkpoint(tmp_path, pera_state):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': pera_state, 'meta': {'epoch': 1}}, path)
    teacher = _teacher(pera_state)
    model = _adapter(path, teacher=teacher)
    spm_before = model.spm.stem[0].weight.clone()
    model.init_weights()
    _assert_vit_equal(model, teacher)
    report = load_vit_checkpoint(model, str(path))
    assert report['layout'] == 'pera'
    assert not [k for k in report['missing'] if is_vit_key(k)]  # zero missing ViT keys
    assert report['missing'] and all(not is_vit_key(k) for k in report['missing'])
    assert set(report['unexpected']) == {'cls_token', 'norm.weight', 'norm.bias'}
    # the adapter-only parts got the random init, not torch defaults left in place
    assert not torch.equal(spm_before, model.spm.stem[0].weight)


def test_student_part_and_pera_vit(tmp_path, pera_state):
    path = tmp_path / 'full.pth'
    torch.save({'state_dict': pera_state}, path)
    teacher = _teacher(pera_state)
    vit = PerAViT(
        arch=TINY_ARCH,
        img_size=64,
        layer_scale_init_value=1e-5 if 'blocks.0.ls1.gamma' in teacher else 0.0,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)),
    )
    vit.init_weights()
    assert set(vit.state_dict()) == set(teacher)
    _assert_vit_equal(vit, teacher)
    report = load_vit_checkpoint(vit, str(path), part='student')
    assert report['missing'] == [] and report['unexpected'] == []
    student = OrderedDict(
        (k[len('backbone.') :], v) for k, v in pera_state.items() if k.startswith('backbone.')
    )
    _assert_vit_equal(vit, student)


@pytest.mark.parametrize(
    'fmt,prefix', [('pera', None), ('pera', 'backbone.'), ('mmpretrain', None)]
)
def test_adapter_from_extract_backbone_output(tmp_path, pera_state, fmt, prefix):
    path = tmp_path / 'backbone.pth'
    save_weights_file(extract_backbone(pera_state, fmt=fmt, prefix=prefix), str(path), {})
    teacher = _teacher(pera_state)
    model = _adapter(teacher=teacher)
    report = load_vit_checkpoint(model, str(path))
    assert report['layout'] == ('backbone-mmpretrain' if fmt == 'mmpretrain' else 'backbone')
    _assert_vit_equal(model, teacher)


def test_adapter_from_released_layout(tmp_path, pera_state):
    """The released code's keys: student./teacher. backbones (teacher blocks chunked)."""
    released = OrderedDict()
    for key, value in pera_state.items():
        if key.startswith('backbone.'):
            released['student.' + key] = value
        elif key.startswith('teacher.backbone.'):
            sub = key[len('teacher.backbone.') :]
            if sub.startswith('blocks.'):
                i, rest = sub.split('.', 2)[1:]
                sub = f'blocks.0.{i}.{rest}'  # one DINOv2 BlockChunk
            released['teacher.backbone.' + sub] = value
    released['s_mask_token'] = torch.zeros(1, 1, TINY_ARCH['embed_dims'])
    path = tmp_path / 'released.pth'
    torch.save({'model': released}, path)
    teacher = _teacher(pera_state)
    model = _adapter(path, teacher=teacher)
    model.init_weights()
    _assert_vit_equal(model, teacher)
    assert load_vit_checkpoint(model, str(path))['layout'] == 'released'


def test_bad_files_one_line_errors(tmp_path, pera_state):
    junk = tmp_path / 'junk.pth'
    torch.save({'state_dict': {'decode_head.conv.weight': torch.zeros(2)}}, junk)
    model = _adapter(junk, teacher=_teacher(pera_state))
    with pytest.raises(PeraDataError) as info:
        model.init_weights()
    msg = str(info.value)
    assert str(junk) in msg and '\n' not in msg and 'no recognised ViT weights' in msg

    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(PeraDataError, match='notes.pth') as info:
        load_vit_checkpoint(model, str(text))
    assert '\n' not in str(info.value)

    with pytest.raises(PeraFileNotFoundError, match='missing.pth: no such checkpoint file'):
        load_vit_checkpoint(model, str(tmp_path / 'missing.pth'))

    # a ViT checkpoint with blocks missing: named, one line
    partial = OrderedDict(
        (k, v) for k, v in _teacher(pera_state).items() if not k.startswith('blocks.3.')
    )
    part_path = tmp_path / 'partial.pth'
    save_weights_file(partial, str(part_path), {})
    with pytest.raises(PeraDataError, match=r'partial.pth: \d+ ViT key\(s\) .* missing'):
        load_vit_checkpoint(model, str(part_path))


def test_training_checkpoint_without_teacher_is_refused(tmp_path, pera_state):
    """A training checkpoint whose teacher was dropped must not load its student as the teacher."""
    no_teacher = OrderedDict((k, v) for k, v in pera_state.items() if not k.startswith('teacher.'))
    path = tmp_path / 'student_only.pth'
    torch.save({'state_dict': no_teacher}, path)
    model = _adapter(path, teacher=_teacher(pera_state))
    with pytest.raises(PeraDataError, match='without teacher weights') as info:
        model.init_weights()
    assert str(path) in str(info.value) and '\n' not in str(info.value)


def test_public_weight_options_load_with_zero_missing_keys(tmp_path):
    """Register tokens, q/v biases and SwiGLU weights are ViT keys for pretrained loading."""
    kw = dict(img_size=32, patch_size=16, num_register_tokens=2, qkv_bias='qv', mlp_type='swiglu')
    arch = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    src = PerAViT(arch=arch, **kw)
    for p in src.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / 'opts.pth'
    save_weights_file(OrderedDict(src.state_dict()), str(path), {})
    dst = PerAViT(arch=arch, **kw)
    load_vit_checkpoint(dst, str(path))
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value), key
