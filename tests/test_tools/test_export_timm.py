"""tools/model_converters/export_timm.py: timm's own loader rebuilds the PerA encoder."""

import json
import logging
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from timm.layers import resample_abs_pos_embed

from pera_mm.models import PerAViT
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.timm_export import parse_config_text, prepare_timm_export, training_settings

CONVERTERS = REPO_ROOT / 'tools' / 'model_converters'
TINY_CONFIG = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'
#: the shipped PerA pretraining configs, one per size
SHIPPED = {
    'tiny': 'pera_vit-tiny-p16_1xb32-20e_demo-96px.py',
    'base': 'pera_vit-base-p16_8xb24-200e_rsrsd-448px.py',
    'large': 'pera_vit-large-p16_8xb16-200e_rsrsd-448px.py',
    'giant-1024': 'pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px.py',
}
AID_IMAGES = ('Airport/airport_1.jpg', 'Beach/beach_2.jpg', 'Forest/forest_3.jpg')
OTHER = 144  # a 9x9 grid against the 6x6 of the 96 px pretraining size


def _backbone_kwargs(cfg):
    kwargs = dict(cfg.model.backbone)
    kwargs.pop('type')
    return kwargs


def _perturbed(model, seed):
    """Random weights with non-trivial norms (init_weights leaves LN at 1/0)."""
    torch.manual_seed(seed)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every tensor
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A PerA training checkpoint of the shipped ViT-Tiny config (teacher and
    student differ), as MMEngine writes it (``meta['cfg']`` = the config text)."""
    cfg = Config.fromfile(str(TINY_CONFIG))
    kwargs = _backbone_kwargs(cfg)
    student = _perturbed(PerAViT(**kwargs), 0)
    teacher = _perturbed(PerAViT(**kwargs), 1)
    sd = OrderedDict(('backbone.' + k, v) for k, v in student.state_dict().items())
    sd['projector.mlp.0.weight'] = torch.randn(32, 192)
    sd['mask_token'] = torch.randn(1, 1, 192)
    sd.update(('teacher.backbone.' + k, v) for k, v in teacher.state_dict().items())
    sd['teacher.projector.mlp.0.weight'] = torch.randn(32, 192)
    path = tmp_path_factory.mktemp('tiny') / 'epoch_20.pth'
    torch.save(dict(state_dict=sd, meta=dict(cfg=cfg.pretty_text, epoch=20, iter=40)), path)
    return path, teacher, kwargs, cfg


@pytest.fixture(scope='module')
def export(tiny_run, tmp_path_factory, load_script):
    """Export folders of the tiny run: default, --img-size 144 (runtime / load)."""
    tool = load_script(CONVERTERS / 'export_timm.py')
    src = tiny_run[0]
    root = tmp_path_factory.mktemp('timm')
    dirs = {}
    for name, extra in (
        ('default', []),
        ('runtime', ['--img-size', str(OTHER)]),
        ('load', ['--img-size', str(OTHER), '--pos-resize', 'load']),
    ):
        dirs[name] = root / name
        tool.main([str(src), str(dirs[name]), *extra])
    return dirs


def _timm(folder, **kwargs):
    return timm.create_model(f'local-dir:{folder}', pretrained=True, **kwargs).eval()


def _aid_batch(shared_path, size, cfg):
    """Real AID tiles (150 px): bicubic resize to 96 px or centre crop to ``size``."""
    mean = torch.tensor(cfg.model.data_preprocessor.mean).view(3, 1, 1)
    std = torch.tensor(cfg.model.data_preprocessor.std).view(3, 1, 1)
    out = []
    for rel in AID_IMAGES:
        img = Image.open(shared_path(f'AID_150px/AID/{rel}')).convert('RGB')
        if size == 96:
            img = img.resize((96, 96), Image.BICUBIC)
        else:
            off = (150 - size) // 2
            img = img.crop((off, off, off + size, off + size))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
        out.append((x - mean) / std)
    return torch.stack(out)


def _ours(model, x):
    """PerAViT's final-normed tokens (N, 1 + L, C) on the dense path."""
    model.out_type = 'raw'
    with torch.no_grad():
        return model(x)[-1]


def _theirs(model, x):
    with torch.no_grad():
        return model.forward_features(x), model(x)


def _close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.needs_shared
@pytest.mark.parametrize('dynamic', [False, True])
def test_same_features_at_the_pretraining_size(tiny_run, export, shared_path, dynamic):
    _, teacher, _, cfg = tiny_run
    model = _timm(export['default'], dynamic_img_size=dynamic)
    assert type(model).__name__ == 'VisionTransformer'
    assert model.num_classes == 0 and model.embed_dim == 192 and len(model.blocks) == 12
    assert model.blocks[0].attn.num_heads == 3
    x = _aid_batch(shared_path, 96, cfg)
    tokens, cls = _theirs(model, x)
    ours = _ours(teacher, x)
    assert tokens.shape == ours.shape == (3, 37, 192)
    _close(tokens, ours)
    _close(cls, ours[:, 0])
    # the data config timm resolves is the run's normalisation, in 0-1 units
    data = timm.data.resolve_data_config(model=model)
    np.testing.assert_allclose(data['mean'], np.array([123.675, 116.28, 103.53]) / 255, atol=1e-6)
    np.testing.assert_allclose(data['std'], np.array([58.395, 57.12, 57.375]) / 255, atol=1e-6)
    assert data['input_size'] == (3, 96, 96)


@pytest.mark.needs_shared
def test_timm_dynamic_resize_differs_only_in_the_position_table(tiny_run, export, shared_path):
    """At 144 px timm's own resize (antialiased bicubic to the size) is not
    PerAViT's (bicubic with scale (9 + 0.1) / 6): the features differ, and
    they agree once PerAViT is given timm's table."""
    _, teacher, kwargs, cfg = tiny_run
    model = _timm(export['default'], dynamic_img_size=True)
    x = _aid_batch(shared_path, OTHER, cfg)
    tokens, _ = _theirs(model, x)
    ours = _ours(teacher, x)
    assert tokens.shape == ours.shape == (3, 82, 192)
    assert (tokens - ours).abs().max() > 1e-3

    with_timm_table = PerAViT(**dict(kwargs, img_size=OTHER)).eval()
    state = teacher.state_dict()
    state['pos_embed'] = resample_abs_pos_embed(teacher.pos_embed.detach(), (9, 9), (6, 6))
    with_timm_table.load_state_dict(state, strict=True)
    _close(tokens, _ours(with_timm_table, x))


@pytest.mark.needs_shared
@pytest.mark.parametrize('dynamic', [False, True])
def test_img_size_export_matches_pera_at_that_size(tiny_run, export, shared_path, dynamic):
    _, teacher, kwargs, cfg = tiny_run
    x = _aid_batch(shared_path, OTHER, cfg)
    # runtime: the 96 px PerAViT fed 144 px images
    tokens, cls = _theirs(_timm(export['runtime'], dynamic_img_size=dynamic), x)
    ours = _ours(teacher, x)
    _close(tokens, ours)
    _close(cls, ours[:, 0])
    # load: a PerAViT built at 144 px that loads the 96 px weights
    built_there = PerAViT(**dict(kwargs, img_size=OTHER)).eval()
    built_there.load_state_dict(teacher.state_dict(), strict=True)
    tokens, _ = _theirs(_timm(export['load'], dynamic_img_size=dynamic), x)
    _close(tokens, _ours(built_there, x))
    assert (_ours(built_there, x) - ours).abs().max() > 1e-4  # two conventions, two tables


def test_config_json_and_safetensors(tiny_run, export):
    _, teacher, _, _ = tiny_run
    config = json.loads((export['default'] / 'config.json').read_text())
    assert config['architecture'] == 'vit_tiny_patch16_224'
    assert config['num_classes'] == 0 and config['num_features'] == 192
    assert config['model_args'] == dict(
        img_size=96,
        patch_size=16,
        in_chans=3,
        embed_dim=192,
        depth=12,
        num_heads=3,
        mlp_ratio=4.0,
        qkv_bias=True,
        init_values=None,
        class_token=True,
        no_embed_class=False,
        reg_tokens=0,
        pre_norm=False,
        final_norm=True,
        fc_norm=False,
        norm_layer='layernorm',
        global_pool='token',
        num_classes=0,
    )
    assert config['pretrained_cfg']['input_size'] == [3, 96, 96]
    weights = load_file(str(export['default'] / 'model.safetensors'))
    expected = teacher.state_dict()
    assert set(weights) == set(expected)
    for key, value in expected.items():
        assert torch.equal(weights[key], value), key
    with safe_open(str(export['runtime'] / 'model.safetensors'), 'pt') as f:
        assert f.metadata() == dict(format='pt', source='pera_mm', pos_resize='runtime')
        assert f.get_tensor('pos_embed').shape == (1, 82, 192)
    runtime = json.loads((export['runtime'] / 'config.json').read_text())
    assert runtime['model_args']['img_size'] == OTHER
    assert runtime['pretrained_cfg']['input_size'] == [3, OTHER, OTHER]


@pytest.mark.parametrize('size', sorted(SHIPPED))
def test_architecture_mapping_of_every_shipped_size(size):
    """Each shipped config's encoder, on the meta device: timm's model from the
    exported config has exactly PerAViT's parameter names and shapes."""
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/pera' / SHIPPED[size]))
    assert cfg.model.backbone.arch == size
    with torch.device('meta'):
        ours = PerAViT(**_backbone_kwargs(cfg))
    vit = OrderedDict(ours.state_dict())
    config, weights = prepare_timm_export(vit, training_settings(dict(cfg=cfg.pretty_text)))
    assert weights.keys() == vit.keys()
    args = config['model_args']
    zoo = PerAViT.arch_zoo[size]
    assert (args['embed_dim'], args['depth'], args['num_heads']) == (
        zoo['embed_dims'],
        zoo['num_layers'],
        zoo['num_heads'],
    )
    assert args['mlp_ratio'] * args['embed_dim'] == zoo['feedforward_channels']
    assert args['img_size'] == cfg.model.backbone.img_size
    theirs = timm.create_model(config['architecture'], pretrained=False, device='meta', **args)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in vit.items()}
    assert theirs.blocks[0].attn.num_heads == ours.blocks[0].attn.num_heads
    assert theirs.blocks[0].norm1.eps == ours.blocks[0].norm1.eps == 1e-6


def test_slim_giant_layout_small_width_through_mmpretrain_names(tmp_path, load_script):
    """The ViT-G/16-1024 layout (40 blocks, 16 heads) at width 64, with
    LayerScale: training checkpoint -> extract_backbone (MMPretrain names) ->
    export_timm -> timm gives PerAViT's features."""
    arch = dict(embed_dims=64, num_layers=40, num_heads=16, feedforward_channels=256)
    kwargs = dict(arch=arch, img_size=64, layer_scale_init_value=1e-5)
    teacher = _perturbed(PerAViT(**kwargs), 2)
    sd = OrderedDict(('teacher.backbone.' + k, v) for k, v in teacher.state_dict().items())
    sd.update(('backbone.' + k, torch.zeros_like(v)) for k, v in teacher.state_dict().items())
    model_cfg = dict(type='PerA', backbone=dict(type='PerAViT', **kwargs))
    text = Config(dict(model=model_cfg)).pretty_text
    src = tmp_path / 'giant_slim.pth'
    torch.save(dict(state_dict=sd, meta=dict(cfg=text)), src)
    extracted, out = tmp_path / 'vit_mmpretrain.pth', tmp_path / 'timm'
    load_script(CONVERTERS / 'extract_backbone.py').main(
        [str(src), str(extracted), '--format', 'mmpretrain', '--prefix', 'backbone.']
    )
    meta = torch.load(extracted, weights_only=True)['meta']
    assert meta['backbone_cfg']['arch'] == arch
    load_script(CONVERTERS / 'export_timm.py').main([str(extracted), str(out)])
    model = _timm(out)
    config = json.loads((out / 'config.json').read_text())
    assert config['architecture'] == 'vit_base_patch16_224'  # closest name; args say the rest
    assert config['model_args']['init_values'] == 1e-5
    assert (len(model.blocks), model.blocks[0].attn.num_heads) == (40, 16)
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    tokens, _ = _theirs(model, x)
    _close(tokens, _ours(teacher, x))
    assert torch.equal(model.blocks[39].ls2.gamma, teacher.blocks[39].ls2.gamma)


@pytest.mark.needs_shared
def test_released_layout_with_num_heads(shared_path, tmp_path, load_script):
    """The released PerA layout (the recorded parity step's weights: ViT 192 wide,
    4 blocks, no PerAViT arch, so --num-heads) straight to timm."""
    released = torch.load(shared_path('parity/pera_parity_v1.pt'), weights_only=True)
    released = dict(released['weights_init'], **{'ibot_head.mlp.0.weight': torch.zeros(1)})
    src, out = tmp_path / 'released.pth', tmp_path / 'timm'
    torch.save({'model': released, 'optimizer': {'state': {}, 'param_groups': []}}, src)
    tool = load_script(CONVERTERS / 'export_timm.py')
    tool.main([str(src), str(out), '--num-heads', '3', '--ignore', '^ibot_head'])
    teacher = PerAViT(
        arch=dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768), img_size=128
    ).eval()
    prefix = 'teacher.backbone.'
    teacher.load_state_dict(
        {k[len(prefix) :]: v for k, v in released.items() if k.startswith(prefix)}, strict=True
    )
    torch.manual_seed(4)
    x = torch.randn(2, 3, 128, 128)
    tokens, cls = _theirs(_timm(out), x)
    _close(tokens, _ours(teacher, x))
    assert cls.shape == (2, 192)


def test_parse_config_text_reads_literals_only():
    text = (
        "model = dict(backbone=dict(arch='base', img_size=448, offset=-0.1), l=[1, (2, 3)])\n"
        'x = foo(1)\n'
        "y = {'a': None}\n"
    )
    assert parse_config_text(text) == dict(
        model=dict(backbone=dict(arch='base', img_size=448, offset=-0.1), l=[1, (2, 3)]),
        y={'a': None},
    )
    assert parse_config_text('model = dict(') == {}


def _exit_message(tool, argv):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert isinstance(exc.value.code, str) and '\n' not in exc.value.code
    return exc.value.code


def test_one_line_errors(tiny_run, tmp_path, load_script):
    tool = load_script(CONVERTERS / 'export_timm.py')
    src, teacher, _, _ = tiny_run
    missing = tmp_path / 'missing.pth'
    assert _exit_message(tool, [str(missing), str(tmp_path / 'o')]) == (
        f'error: {missing}: no such file'
    )
    student_only = tmp_path / 'student_only.pth'
    sd = torch.load(src, weights_only=True)['state_dict']
    torch.save(
        {'state_dict': {k: v for k, v in sd.items() if not k.startswith('teacher.')}}, student_only
    )
    assert _exit_message(tool, [str(student_only), str(tmp_path / 'o')]) == (
        f"error: {student_only} has no teacher weights (no 'teacher.*' keys); "
        'export the student with --student'
    )
    assert _exit_message(tool, [str(src), str(tmp_path / 'o'), '--pos-resize', 'nearest']) == (
        "error: --pos-resize must be one of runtime, load; got 'nearest'"
    )
    odd = tmp_path / 'odd.pth'
    backbone = {k: v for k, v in teacher.state_dict().items() if not k.startswith('blocks.11.')}
    torch.save({'state_dict': backbone}, odd)  # 11 blocks: no PerAViT arch
    assert _exit_message(tool, [str(odd), str(tmp_path / 'o')]) == (
        f'error: {odd}: cannot tell the number of attention heads of a 192-wide, '
        '11-block ViT (not a PerAViT arch and the checkpoint has no config); pass --num-heads'
    )
    tool.main([str(odd), str(tmp_path / 'o11'), '--num-heads', '3'])
    assert len(_timm(tmp_path / 'o11').blocks) == 11


@pytest.mark.parametrize('name', ['export_timm', 'extract_backbone', 'pera_official_to_mm'])
def test_help(name, load_script, capsys):
    with pytest.raises(SystemExit) as exc:
        load_script(CONVERTERS / f'{name}.py').main(['--help'])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ')


def test_cli_subprocess_student(tiny_run, tmp_path):
    src, _, _, _ = tiny_run
    out = tmp_path / 'student'
    proc = subprocess.run(
        [sys.executable, str(CONVERTERS / 'export_timm.py'), str(src), str(out), '--student'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'wrote 150 student encoder tensors' in proc.stdout
    assert 'write model.safetensors' in proc.stderr  # the tqdm bar
    sd = torch.load(src, weights_only=True)['state_dict']
    weights = load_file(str(out / 'model.safetensors'))
    assert torch.equal(weights['blocks.5.attn.qkv.weight'], sd['backbone.blocks.5.attn.qkv.weight'])


@pytest.mark.parametrize(
    'option', [dict(num_register_tokens=2), dict(qkv_bias='qv'), dict(mlp_type='swiglu')]
)
def test_public_weight_options_are_refused_in_one_line(option):
    """Options the timm export does not map must not be exported as a plain ViT."""
    arch = dict(embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=128)
    vit = PerAViT(arch=arch, img_size=32, patch_size=16, **option).state_dict()
    with pytest.raises(ValueError, match='timm export does not cover') as info:
        prepare_timm_export(vit, source='opt.pth')
    assert '\n' not in str(info.value) and 'opt.pth' in str(info.value)
