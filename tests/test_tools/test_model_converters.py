"""tools/model_converters: command lines, files in, files out."""

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.models import VisionTransformer

from pera_mm.models import PerAViT
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.checkpoint_convert import convert_official_to_pera

CONVERTERS = REPO_ROOT / 'tools' / 'model_converters'
ARCH = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)


def _cli(name, *args, cwd):
    proc = subprocess.run(
        [sys.executable, str(CONVERTERS / f'{name}.py'), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope='module')
def released(shared_path):
    """The released-layout initial weights of the recorded parity step."""
    return torch.load(shared_path('parity/pera_parity_v1.pt'), weights_only=True)['weights_init']


@pytest.fixture(scope='module')
def training_checkpoint(tmp_path_factory):
    """An MMEngine PerA training checkpoint: state dict + message hub
    (HistoryBuffer, numpy scalars) + optimizer, as Runner.save_checkpoint
    writes it."""
    torch.manual_seed(0)
    student, teacher = (PerAViT(arch=ARCH, img_size=128) for _ in range(2))
    student.init_weights(), teacher.init_weights()
    sd = OrderedDict(('backbone.' + k, v) for k, v in student.state_dict().items())
    sd['projector.mlp.0.weight'] = torch.randn(32, 192)
    sd['mask_token'] = torch.randn(1, 1, 192)
    sd.update(('teacher.backbone.' + k, v) for k, v in teacher.state_dict().items())
    sd['teacher.projector.mlp.0.weight'] = torch.randn(32, 192)
    sd['cls_loss.center'] = torch.zeros(1, 64)
    buffer = HistoryBuffer()
    buffer.update(1.5)
    ckpt = dict(
        meta=dict(epoch=3, iter=120, cfg='model = dict(type="PerA")'),
        state_dict=sd,
        message_hub=dict(
            log_scalars=OrderedDict({'train/loss': buffer}),
            runtime_info=OrderedDict(eta=np.float64(3.0)),
            resumed_keys=OrderedDict(),
        ),
        optimizer=dict(state={}, param_groups=[]),
        param_schedulers=[],
    )
    path = tmp_path_factory.mktemp('ckpt') / 'iter_120.pth'
    torch.save(ckpt, path)
    return path, sd


@pytest.mark.needs_shared
def test_official_cli_on_real_weights(released, tmp_path):
    src, dst = tmp_path / 'released.pth', tmp_path / 'out' / 'pera_mm.pth'
    torch.save({'model': {'module.' + k: v for k, v in released.items()}, 'iteration': 2000}, src)
    proc = _cli('pera_official_to_mm', src, dst, cwd=tmp_path)
    assert f'wrote 133 tensors to {dst}' in proc.stdout
    out = torch.load(dst, weights_only=True)
    assert set(out) == {'state_dict', 'meta'}
    expected = convert_official_to_pera(released)
    assert set(out['state_dict']) == set(expected)
    for key, value in expected.items():
        assert torch.equal(out['state_dict'][key], value), key
    meta = out['meta']
    assert meta['converter'] == 'pera_official_to_mm'
    assert meta['teacher_only'] is False
    assert meta['arch']['embed_dims'] == 192 and meta['arch']['num_layers'] == 4
    # MMEngine's loader reads it too
    assert set(_load_checkpoint(str(dst))['state_dict']) == set(expected)


@pytest.mark.needs_shared
def test_official_teacher_only_with_copy(released, tmp_path, load_script):
    export = {
        k[8:].replace('cls_head', 'dino_head'): v
        for k, v in released.items()
        if k.startswith('teacher.')
    }
    src, dst = tmp_path / 'teacher.pth', tmp_path / 'pera_mm.pth'
    torch.save({'teacher': export}, src)
    load_script(CONVERTERS / 'pera_official_to_mm.py').main(
        [str(src), str(dst), '--copy-teacher-to-student']
    )
    out = torch.load(dst, weights_only=True)
    assert out['meta']['teacher_only'] is True
    assert len(out['state_dict']) == 2 * len(export)
    assert torch.equal(
        out['state_dict']['projector.last_layer.weight_v'],
        released['teacher.cls_head.last_layer.weight_v'],
    )


@pytest.mark.needs_shared
def test_official_cli_errors_are_one_line(released, tmp_path, load_script):
    tool = load_script(CONVERTERS / 'pera_official_to_mm.py')
    src = tmp_path / 'extra.pth'
    torch.save({**released, 'student.ibot_head.mlp.0.weight': torch.zeros(1)}, src)
    with pytest.raises(SystemExit) as exc:
        tool.main([str(src), str(tmp_path / 'o.pth')])
    assert exc.value.code == (
        f'error: {src}: 1 key(s): student.ibot_head.mlp.0.weight have no '
        'mapping to the PerA layout (drop them on purpose with ignore / '
        '--ignore REGEX)'
    )
    tool.main([str(src), str(tmp_path / 'o.pth'), '--ignore', 'ibot_head'])
    assert (tmp_path / 'o.pth').is_file()

    with pytest.raises(SystemExit) as exc:
        tool.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'o.pth')])
    assert exc.value.code == f'error: {tmp_path / "missing.pth"}: no such file'


def test_extract_cli_mmpretrain_with_prefix(training_checkpoint, tmp_path):
    src, sd = training_checkpoint
    dst = tmp_path / 'vit.pth'
    proc = _cli(
        'extract_backbone',
        src,
        dst,
        '--format',
        'mmpretrain',
        '--prefix',
        'backbone.',
        cwd=tmp_path,
    )
    assert 'teacher backbone tensors (mmpretrain)' in proc.stdout
    out = torch.load(dst, weights_only=True)
    assert all(k.startswith('backbone.') for k in out['state_dict'])
    meta = out['meta']
    assert (meta['part'], meta['format'], meta['iter'], meta['epoch']) == (
        'teacher',
        'mmpretrain',
        120,
        3,
    )
    assert meta['arch']['num_patches'] == 64

    # what a downstream config does with it
    vit = VisionTransformer(
        arch=ARCH,
        img_size=128,
        patch_size=16,
        out_type='cls_token',
        init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'),
    )
    vit.init_weights()
    assert torch.equal(
        vit.layers[2].ffn.layers[1].weight, sd['teacher.backbone.blocks.2.mlp.fc2.weight']
    )
    assert torch.equal(vit.ln1.bias, sd['teacher.backbone.norm.bias'])
    # every VisionTransformer key is in the file, nothing else is
    bare = {k[len('backbone.') :]: v for k, v in out['state_dict'].items()}
    result = VisionTransformer(arch=ARCH, img_size=128, patch_size=16).load_state_dict(
        bare, strict=True
    )
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize('student', [False, True])
def test_extract_pera_format_loads_strictly(training_checkpoint, tmp_path, student, load_script):
    src, sd = training_checkpoint
    dst = tmp_path / 'backbone.pth'
    load_script(CONVERTERS / 'extract_backbone.py').main(
        [str(src), str(dst)] + (['--student'] if student else [])
    )
    state = torch.load(dst, weights_only=True)['state_dict']
    model = PerAViT(arch=ARCH, img_size=128)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    prefix = 'backbone.' if student else 'teacher.backbone.'
    assert torch.equal(model.cls_token, sd[prefix + 'cls_token'])


def test_extract_without_teacher_is_a_one_line_error(training_checkpoint, tmp_path, load_script):
    _, sd = training_checkpoint
    src = tmp_path / 'student_only.pth'
    torch.save({'state_dict': {k: v for k, v in sd.items() if not k.startswith('teacher.')}}, src)
    with pytest.raises(SystemExit) as exc:
        load_script(CONVERTERS / 'extract_backbone.py').main([str(src), str(tmp_path / 'o.pth')])
    assert exc.value.code == (
        f"error: {src} has no 'teacher.backbone.*' weights (is it a PerA training checkpoint?)"
    )


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'keep, prefix', [('teacher', 'teacher.'), ('teacher-backbone', 'teacher.backbone.')]
)
def test_official_keep_writes_only_the_teacher(released, tmp_path, load_script, keep, prefix):
    src, dst = tmp_path / 'released.pth', tmp_path / f'{keep}.pth'
    torch.save({'model': released, 'optimizer': {'state': {}, 'param_groups': []}}, src)
    load_script(CONVERTERS / 'pera_official_to_mm.py').main([str(src), str(dst), '--keep', keep])
    out = torch.load(dst, weights_only=True)
    expected = {k: v for k, v in convert_official_to_pera(released).items() if k.startswith(prefix)}
    assert len(expected) == {'teacher': 62, 'teacher-backbone': 54}[keep]
    assert set(out['state_dict']) == set(expected)
    for key, value in expected.items():
        assert torch.equal(out['state_dict'][key], value), key
    assert out['meta']['keep'] == keep and out['meta']['teacher_only'] is True
    assert out['meta']['arch']['num_layers'] == 4
    # a teacher-backbone file initialises PerAViT through the usual init_cfg
    if keep == 'teacher-backbone':
        init_cfg = dict(type='Pretrained', checkpoint=str(dst))
        model = PerAViT(arch=ARCH, img_size=128, init_cfg=init_cfg)
        model.init_weights()
        qkv = released['teacher.backbone.blocks.1.attn.qkv.weight']
        assert torch.equal(model.blocks[1].attn.qkv.weight, qkv)


@pytest.mark.needs_shared
def test_official_keep_errors_are_one_line(released, tmp_path, load_script):
    tool = load_script(CONVERTERS / 'pera_official_to_mm.py')
    src = tmp_path / 'released.pth'
    torch.save(released, src)
    out = str(tmp_path / 'o.pth')
    with pytest.raises(SystemExit) as exc:
        tool.main([str(src), out, '--keep', 'student'])
    assert exc.value.code == (
        "error: --keep must be one of all, teacher, teacher-backbone; got 'student'"
    )
    with pytest.raises(SystemExit) as exc:
        tool.main([str(src), out, '--keep', 'teacher', '--copy-teacher-to-student'])
    assert exc.value.code == (
        'error: --copy-teacher-to-student writes student keys; it needs --keep all, '
        'not --keep teacher'
    )
    student_only = tmp_path / 'student_only.pth'
    torch.save({k: v for k, v in released.items() if not k.startswith('teacher.')}, student_only)
    with pytest.raises(SystemExit) as exc:
        tool.main([str(student_only), out, '--keep', 'teacher'])
    assert exc.value.code == (
        f"error: {student_only} has no 'teacher.backbone.*' weights "
        '(is it a PerA training checkpoint?)'
    )


def test_official_help_names_keep(load_script, capsys):
    with pytest.raises(SystemExit):
        load_script(CONVERTERS / 'pera_official_to_mm.py').main(['--help'])
    assert '--keep all|teacher|teacher-backbone' in capsys.readouterr().out
