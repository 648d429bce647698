"""Key mappings: released PerA layout -> ours; PerA -> backbone checkpoints."""

import re
from collections import OrderedDict

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from mmpretrain.models import VisionTransformer

from pera_mm.models import PerAViT
from pera_mm.utils.checkpoint_convert import (
    CheckpointConvertError,
    convert_official_to_pera,
    extract_backbone,
    flatten_block_chunks,
    infer_vit_arch,
    load_weights_file,
    mmpretrain_to_pera_vit_key,
    own_storage,
    pera_vit_to_mmpretrain,
    save_weights_file,
    select_backbone,
    select_kept,
    unwrap_state_dict,
)
from pera_mm.utils.errors import PeraDataError

ARCH = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)

# Independent statement of the released -> ours rename (parity.md).
RELEASED_TO_OURS = [
    ('student.backbone.', 'backbone.'),
    ('teacher.backbone.', 'teacher.backbone.'),
    ('student.cls_head.', 'projector.'),
    ('teacher.cls_head.', 'teacher.projector.'),
    ('pred_head.mlp0.', 'predictor.'),
    ('pred_head.', 'predictor.'),
    ('s_mask_token', 'mask_token'),
]


def expected_key(key):
    for old, new in RELEASED_TO_OURS:
        if key.startswith(old):
            return new + key[len(old) :]
    raise AssertionError(f'no rule for {key}')


@pytest.fixture(scope='module')
def released(shared_path):
    """The released-layout initial weights of the recorded parity step."""
    return torch.load(shared_path('parity/pera_parity_v1.pt'), weights_only=True)['weights_init']


def assert_same_tensors(actual, expected):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape, key
        assert torch.equal(actual[key], value), key


# ----------------------------------------------------- released -> ours


@pytest.mark.needs_shared
def test_real_released_weights_land_at_expected_keys(released):
    out = convert_official_to_pera(released)
    expected = OrderedDict((expected_key(k), v) for k, v in released.items())
    assert len(out) == len(released) == 133
    assert_same_tensors(out, expected)
    assert out['mask_token'].shape == (1, 1, 192)
    assert out['predictor.last_layer.weight_v'].shape == (768, 128)
    assert out['teacher.projector.last_layer.weight_g'].shape == (1024, 1)


@pytest.mark.needs_shared
def test_converted_backbones_load_strictly_into_pera_vit(released):
    out = convert_official_to_pera(released)
    for part in ('student', 'teacher'):
        model = PerAViT(arch=ARCH, img_size=128)
        result = model.load_state_dict(select_backbone(out, part), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        prefix = f'{part}.backbone.'
        assert torch.equal(
            model.blocks[3].mlp.fc2.weight, released[prefix + 'blocks.3.mlp.fc2.weight']
        )


@pytest.mark.parametrize(
    'wrap',
    [
        lambda sd: {'model': sd, 'iteration': 7},
        lambda sd: {'state_dict': {'module.' + k: v for k, v in sd.items()}},
        lambda sd: {
            'student': {k[8:]: v for k, v in sd.items() if k.startswith('student.')},
            'teacher': {'module.' + k[8:]: v for k, v in sd.items() if k.startswith('teacher.')},
            **{k: v for k, v in sd.items() if not k.startswith(('student.', 'teacher.'))},
        },
    ],
)
@pytest.mark.needs_shared
def test_wrappers_and_module_prefixes(released, wrap):
    out = convert_official_to_pera(unwrap_state_dict(wrap(dict(released))))
    expected = {expected_key(k): v for k, v in released.items()}
    assert set(out) == set(expected)
    assert all(torch.equal(out[k], expected[k]) for k in expected)


def _chunk(state_dict, chunk_size):
    """DINOv2 BlockChunk layout: blocks.{i // size}.{i}.* (Identity padding
    keeps the global index inside each chunk)."""
    out = OrderedDict()
    for key, value in state_dict.items():
        m = re.match(r'^(.*backbone\.)blocks\.(\d+)\.(.*)$', key)
        if m:
            i = int(m.group(2))
            key = f'{m.group(1)}blocks.{i // chunk_size}.{i}.{m.group(3)}'
        out[key] = value
    return out


@pytest.mark.needs_shared
def test_chunked_blocks_are_flattened(released):
    chunked = _chunk(released, 2)
    assert 'student.backbone.blocks.1.3.norm1.weight' in chunked
    assert_same_tensors(convert_official_to_pera(chunked), convert_official_to_pera(released))


def test_flatten_block_chunks_without_padding():
    # chunk-local indices (no Identity padding) are numbered in order too
    sd = {
        f'blocks.{c}.{i}.norm1.weight': torch.full((1,), 2.0 * c + i)
        for c in range(2)
        for i in range(2)
    }
    out = flatten_block_chunks(sd)
    assert [out[f'blocks.{n}.norm1.weight'].item() for n in range(4)] == [0.0, 1.0, 2.0, 3.0]


def _teacher_export(released):
    return {
        k[len('teacher.') :].replace('cls_head.', 'dino_head.'): v
        for k, v in released.items()
        if k.startswith('teacher.')
    }


@pytest.mark.needs_shared
def test_teacher_only_export(released):
    export = _teacher_export(released)
    out = convert_official_to_pera(unwrap_state_dict({'teacher': export}))
    assert set(out) == {k for k in map(expected_key, released) if k.startswith('teacher.')}
    assert torch.equal(out['teacher.projector.mlp.4.bias'], released['teacher.cls_head.mlp.4.bias'])

    copied = convert_official_to_pera(export, copy_teacher_to_student=True)
    assert len(copied) == 2 * len(export)
    for key in out:
        student_key = key[len('teacher.') :]
        assert torch.equal(copied[student_key], copied[key])


@pytest.mark.needs_shared
def test_parametrized_weight_norm_names(released):
    parametrized = 'last_layer.parametrizations.weight.original'
    renamed = {
        k.replace('last_layer.weight_g', parametrized + '0').replace(
            'last_layer.weight_v', parametrized + '1'
        ): v
        for k, v in released.items()
    }
    assert_same_tensors(convert_official_to_pera(renamed), convert_official_to_pera(released))


@pytest.mark.needs_shared
def test_dino_loss_center(released):
    center = torch.randn(1, 1024)
    out = convert_official_to_pera({**released, 'dino_loss.center': center})
    assert torch.equal(out['cls_loss.center'], center)


@pytest.mark.needs_shared
def test_unmapped_keys_are_listed_on_one_line(released):
    bad = dict(released)
    bad['student.backbone.register_tokens'] = torch.zeros(1, 4, 192)
    bad['ibot_head.mlp.0.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointConvertError) as err:
        convert_official_to_pera(bad, source='ckpt.pth')
    msg = str(err.value)
    assert '\n' not in msg
    assert msg.startswith('ckpt.pth: 2 key(s): ')
    assert 'student.backbone.register_tokens' in msg
    assert 'ibot_head.mlp.0.weight' in msg
    # dropping them on purpose works
    out = convert_official_to_pera(bad, ignore=['register_tokens', '^ibot_head'])
    assert len(out) == len(released)


def test_long_unmapped_lists_are_truncated():
    bad = {f'junk.{i}': torch.zeros(1) for i in range(20)}
    with pytest.raises(CheckpointConvertError, match=r'20 key\(s\): junk.0, .*\(\+12 more\)'):
        convert_official_to_pera(bad)


def test_non_tensor_values_are_rejected():
    with pytest.raises(
        CheckpointConvertError, match='x.pth: s_mask_token is a str, expected a tensor'
    ):
        unwrap_state_dict({'s_mask_token': 'oops'}, 'x.pth')


# ------------------------------------------------------ PerA -> backbone


def synthetic_pera_state_dict():
    """Our PerA layout: different student and teacher backbones + heads."""
    torch.manual_seed(0)
    student, teacher = (PerAViT(arch=ARCH, img_size=128) for _ in range(2))
    for model in (student, teacher):
        model.init_weights()
        with torch.no_grad():  # make the norms non-trivial
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    sd = OrderedDict()
    sd.update(('backbone.' + k, v) for k, v in student.state_dict().items())
    for name, out in (('projector', 1024), ('predictor', 768)):
        for prefix in [name, 'teacher.' + name] if name == 'projector' else [name]:
            sd[f'{prefix}.mlp.0.weight'] = torch.randn(512, 192)
            sd[f'{prefix}.mlp.0.bias'] = torch.randn(512)
            sd[f'{prefix}.mlp.2.weight'] = torch.randn(512, 512)
            sd[f'{prefix}.mlp.2.bias'] = torch.randn(512)
            sd[f'{prefix}.mlp.4.weight'] = torch.randn(128, 512)
            sd[f'{prefix}.mlp.4.bias'] = torch.randn(128)
            sd[f'{prefix}.last_layer.weight_g'] = torch.ones(out, 1)
            sd[f'{prefix}.last_layer.weight_v'] = torch.randn(out, 128)
    sd['mask_token'] = torch.randn(1, 1, 192)
    sd.update(('teacher.backbone.' + k, v) for k, v in teacher.state_dict().items())
    sd['cls_loss.center'] = torch.randn(1, 1024)
    return sd


def mmpretrain_vit(**kwargs):
    return VisionTransformer(
        arch=ARCH,
        img_size=128,
        patch_size=16,
        qkv_bias=True,
        pre_norm=False,
        final_norm=True,
        out_type='cls_token',
        with_cls_token=True,
        **kwargs,
    )


def test_extract_teacher_backbone_pera_format():
    sd = synthetic_pera_state_dict()
    backbone = extract_backbone(sd)
    assert len(backbone) == 4 + 4 * 12 + 2
    model = PerAViT(arch=ARCH, img_size=128)
    result = model.load_state_dict(backbone, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.pos_embed, sd['teacher.backbone.pos_embed'])
    student = extract_backbone(sd, part='student')
    assert torch.equal(student['blocks.2.attn.qkv.weight'], sd['backbone.blocks.2.attn.qkv.weight'])
    assert infer_vit_arch(backbone) == dict(
        embed_dims=192,
        num_layers=4,
        feedforward_channels=768,
        patch_size=16,
        in_channels=3,
        num_patches=64,
        qkv_bias=True,
        layer_scale=False,
    )


def test_mmpretrain_vit_gives_the_same_cls_feature():
    sd = synthetic_pera_state_dict()
    ours = PerAViT(arch=ARCH, img_size=128, out_type='cls_token')
    ours.load_state_dict(extract_backbone(sd), strict=True)
    theirs = mmpretrain_vit()
    result = theirs.load_state_dict(extract_backbone(sd, fmt='mmpretrain'), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        a, b = ours(x)[-1], theirs(x)[-1]
    assert a.shape == b.shape == (2, 192)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_layer_scale_maps_to_mmpretrain_gammas():
    model = PerAViT(arch=ARCH, img_size=128, layer_scale_init_value=0.1)
    sd = OrderedDict((k, torch.randn_like(v)) for k, v in model.state_dict().items())
    mapped = pera_vit_to_mmpretrain(sd)
    assert torch.equal(mapped['layers.1.attn.gamma1.weight'], sd['blocks.1.ls1.gamma'])
    assert torch.equal(mapped['layers.1.ffn.gamma2.weight'], sd['blocks.1.ls2.gamma'])
    vit = mmpretrain_vit(layer_scale_init_value=0.1)
    result = vit.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize('fmt', ['pera', 'mmpretrain'])
def test_prefix_fits_mmengine_pretrained_init(tmp_path, fmt):
    sd = synthetic_pera_state_dict()
    path = str(tmp_path / 'backbone.pth')
    save_weights_file(extract_backbone(sd, fmt=fmt, prefix='backbone'), path, dict(format=fmt))
    # what init_cfg=dict(type='Pretrained', prefix='backbone.') reads
    loaded = _load_checkpoint_with_prefix('backbone.', path)
    assert set(loaded) == set(extract_backbone(sd, fmt=fmt))

    model = PerAViT(arch=ARCH, img_size=128) if fmt == 'pera' else mmpretrain_vit()
    model.init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    model.init_weights()
    expected = extract_backbone(sd, fmt=fmt)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_missing_teacher_is_a_one_line_error():
    sd = synthetic_pera_state_dict()
    student_only = {k: v for k, v in sd.items() if not k.startswith('teacher.')}
    with pytest.raises(CheckpointConvertError) as err:
        extract_backbone(student_only, source='work_dirs/x/iter_10.pth')
    assert str(err.value) == (
        "work_dirs/x/iter_10.pth has no 'teacher.backbone.*' weights "
        '(is it a PerA training checkpoint?)'
    )


def test_bad_format_and_foreign_keys():
    sd = synthetic_pera_state_dict()
    with pytest.raises(CheckpointConvertError, match='format must be one of'):
        extract_backbone(sd, fmt='timm')
    # register tokens are a PerAViT option (public weights); an unknown tensor is not
    sd['teacher.backbone.register_tokens'] = torch.zeros(1, 4, 192)
    assert 'register_tokens' in extract_backbone(sd)
    sd['teacher.backbone.memory_tokens'] = torch.zeros(1, 4, 192)
    with pytest.raises(
        CheckpointConvertError, match='teacher.backbone.memory_tokens are not PerAViT'
    ):
        extract_backbone(sd)


class _Foreign:
    pass


def test_load_weights_file_errors(tmp_path):
    with pytest.raises(CheckpointConvertError, match='nope.pth: no such file'):
        load_weights_file(str(tmp_path / 'nope.pth'))
    path = tmp_path / 'foreign.pth'
    torch.save({'x': _Foreign()}, path)
    with pytest.raises(CheckpointConvertError) as err:
        load_weights_file(str(path))
    msg = str(err.value)
    assert '\n' not in msg
    assert msg.startswith(
        f'{path}: cannot be read as a weights-only torch '
        'checkpoint (UnpicklingError: WeightsUnpickler error: '
        'Unsupported global'
    )
    torch.save([torch.ones(1)], path)
    with pytest.raises(CheckpointConvertError, match='expected a dict checkpoint, got list'):
        load_weights_file(str(path))


def test_unknown_vit_key_has_no_mmpretrain_equivalent():
    with pytest.raises(
        CheckpointConvertError,
        match='b.pth: blocks.0.attn.q_norm.weight has no MMPretrain VisionTransformer equivalent',
    ):
        pera_vit_to_mmpretrain({'blocks.0.attn.q_norm.weight': torch.ones(1)}, 'b.pth')


# ------------------------------------------------ memory-bounded reading


def test_mmap_load_gives_the_same_tensors(tmp_path):
    sd = synthetic_pera_state_dict()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': sd}, path)
    mapped = load_weights_file(str(path), mmap=True)['state_dict']
    assert_same_tensors(mapped, sd)
    # legacy (non-zip) files cannot be mapped: read whole, with a warning
    legacy = tmp_path / 'legacy.pth'
    torch.save({'state_dict': sd}, legacy, _use_new_zipfile_serialization=False)
    with pytest.warns(UserWarning, match='not in the torch zip format'):
        read = load_weights_file(str(legacy), mmap=True)['state_dict']
    assert_same_tensors(read, sd)


def test_select_kept():
    sd = synthetic_pera_state_dict()
    assert list(select_kept(sd, 'all')) == list(sd)
    teacher = select_kept(sd, 'teacher')
    assert set(teacher) == {k for k in sd if k.startswith('teacher.')}
    assert len(select_kept(sd, 'teacher-backbone')) == 4 + 4 * 12 + 2
    with pytest.raises(CheckpointConvertError, match="got 'student'"):
        select_kept(sd, 'student')
    student_only = {k: v for k, v in sd.items() if not k.startswith('teacher.')}
    with pytest.raises(CheckpointConvertError) as err:
        select_kept(student_only, 'teacher-backbone', 'x.pth')
    assert str(err.value) == (
        "x.pth has no teacher weights ('teacher.backbone.*'); --keep teacher-backbone needs them"
    )
    assert isinstance(err.value, PeraDataError)


def test_views_are_saved_without_their_storage(tmp_path):
    big = torch.randn(1000, 1000)
    row = big[3]
    assert own_storage(big) is big
    compact = own_storage(row)
    assert compact.untyped_storage().nbytes() == 4000 and torch.equal(compact, row)
    for progress in (False, True):
        path = tmp_path / f'row_{progress}.pth'
        save_weights_file({'row': row}, str(path), {'x': 1}, progress=progress)
        assert path.stat().st_size < 20_000  # not the 4 MB storage
        out = torch.load(path, weights_only=True)
        assert torch.equal(out['state_dict']['row'], row) and out['meta'] == {'x': 1}


def test_mmpretrain_names_translate_back():
    model = PerAViT(arch=ARCH, img_size=128, layer_scale_init_value=0.1)
    keys = list(model.state_dict())
    mapped = pera_vit_to_mmpretrain(dict.fromkeys(keys))
    assert [mmpretrain_to_pera_vit_key(k) for k in mapped] == keys
    assert mmpretrain_to_pera_vit_key('layers.0.attn.q_norm.weight') is None
