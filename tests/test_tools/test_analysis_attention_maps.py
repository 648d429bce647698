"""tools/analysis_tools/attention_maps.py: recomputed SDPA weights, overlays, loaders, errors."""

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from pera_mm.testing import PERA_CONFIG, REPO_ROOT, TINY_ARCH, make_pera_checkpoint
from pera_mm.testing.config_shrink import shrink_model_config
from pera_mm.utils.backbone_checkpoint import load_vit_checkpoint
from pera_mm.utils.checkpoint_convert import extract_backbone, save_weights_file
from pera_mm.visualization import (
    attention_weights,
    block_attention,
    build_backbone,
    cls_attention_maps,
    load_encoder,
    model_inputs,
    normalisation,
)
from pera_mm.visualization.figures import ATTENTION_CMAP, overlay_heatmap

TOOL = REPO_ROOT / 'tools/analysis_tools/attention_maps.py'
AID = 'AID_150px/AID'


def tiny_config(path, arch=TINY_ARCH, img_size=64, **heads):
    """The config of :func:`make_pera_checkpoint`'s model (or another small PerA), as a file."""
    cfg = Config.fromfile(PERA_CONFIG)
    heads = heads or dict(prototypes=256, hidden_channels=96, bottleneck_channels=32)
    cfg.model = shrink_model_config(cfg.model, arch, img_size, **heads)
    cfg.dump(str(path))
    return Config.fromfile(str(path))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('attn')
    # a small teacher offset keeps the attention logits at a trained model's scale (with
    # +0.5 on every weight they reach ~1e3 and float32 rounding alone moves the softmax)
    ckpt, teacher = make_pera_checkpoint(root / 'pera.pth', teacher_offset=0.02)
    return dict(root=root, ckpt=ckpt, teacher=teacher, cfg=tiny_config(root / 'tiny.py'))


@pytest.fixture(scope='module')
def tool(load_script):
    return load_script(TOOL)


def one_error_line(err: str) -> str:
    """The tool's error: one line after any progress-bar output, and no traceback."""
    assert 'Traceback' not in err, err
    return err.rstrip('\n').split('\n')[-1]


def run_cli(tool, argv, capsys):
    """The tool as its ``__main__`` runs it; returns (exit code, stdout, stderr)."""
    from pera_mm.utils.cli import PeraCliErrors

    code = 0
    try:
        PeraCliErrors.run(tool.main, argv, tool='attention_maps')
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def hand_attention(vit, x, block, head):
    """softmax(q kᵀ/√d) of one head in float64: blocks run one by one, LayerNorm by hand."""
    vit = copy.deepcopy(vit).double()
    x = x.double()
    with torch.no_grad():
        cls, patches, _ = vit.embed(x)
        h = torch.cat([cls, patches], 1)
        for blk in vit.blocks[:block]:
            h = blk(h)
    blk = vit.blocks[block]
    h = h[0].numpy()
    w, b = blk.norm1.weight.double().detach().numpy(), blk.norm1.bias.double().detach().numpy()
    n = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6) * w + b
    C = h.shape[-1]
    d = C // blk.attn.num_heads
    W = blk.attn.qkv.weight.double().detach().numpy()
    B = blk.attn.qkv.bias.double().detach().numpy()
    rows_q = slice(head * d, (head + 1) * d)
    rows_k = slice(C + head * d, C + (head + 1) * d)
    q, k = n @ W[rows_q].T + B[rows_q], n @ W[rows_k].T + B[rows_k]
    s = q @ k.T / np.sqrt(d)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True), h


@pytest.mark.needs_shared
@pytest.mark.parametrize('block', [3, 1])
def test_recomputed_weights_sum_to_one_and_match_a_hand_computation(tiny, shared_path, block):
    vit, layout = load_encoder(tiny['cfg'], str(tiny['ckpt']))
    assert layout == 'pera'
    for key, value in vit.state_dict().items():  # the teacher was loaded, not the student
        torch.testing.assert_close(value, tiny['teacher'][key], rtol=0, atol=0)
    mean, std = normalisation(tiny['cfg'])
    x, _ = model_inputs([shared_path(f'{AID}/Airport/airport_1.jpg')], 64, mean, std)
    weights = block_attention(vit, x, block - 4)  # negative index: counted from the end
    assert weights.shape == (1, 2, 17, 17)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 17), rtol=0, atol=1e-5)
    expected, h = hand_attention(vit, x, block, head=1)
    np.testing.assert_allclose(weights[0, 1].double().numpy(), expected, rtol=0, atol=1e-6)
    # the recomputed weights are what fused SDPA applied: weights @ v -> proj == attn(norm1(h))
    attn = vit.blocks[block].attn
    with torch.no_grad():
        n = vit.blocks[block].norm1(torch.from_numpy(h).float()[None])
        v = attn.qkv(n).reshape(1, 17, 3, 2, 32)[:, :, 2].transpose(1, 2)
        mixed = attn.proj((weights @ v).transpose(1, 2).reshape(1, 17, 64))
        torch.testing.assert_close(mixed, attn(n), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(attention_weights(attn, n), weights, rtol=0, atol=1e-6)
    maps = cls_attention_maps(weights, (4, 4))
    torch.testing.assert_close(maps[0, 1].flatten(), weights[0, 1, 0, 1:], rtol=0, atol=0)


def test_overlay_colours_each_patch_by_its_scaled_weight():
    img = np.full((64, 64, 3), 200, np.uint8)
    heat = np.zeros((4, 4))
    heat[1, 2], heat[3, 0] = 1.0, 0.5
    out = overlay_heatmap(img, heat, alpha=0.6)
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap(ATTENTION_CMAP)
    for (r, c), level in (((1, 2), 1.0), ((3, 0), 0.5), ((0, 0), 0.0)):
        expected = np.round(0.4 * 200 + 0.6 * np.array(cmap(level)[:3]) * 255)
        block = out[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16]
        assert (block == expected.astype(np.uint8)).all()


@pytest.mark.needs_shared
def test_cli_writes_figures_and_the_weights_of_the_teacher(
    tool, tiny, shared_path, tmp_path, capsys
):
    images = [shared_path(f'{AID}/Beach/beach_2.jpg'), shared_path(f'{AID}/Forest/forest_3.jpg')]
    out_dir = tmp_path / 'maps'
    argv = [str(tiny['root'] / 'tiny.py'), str(tiny['ckpt']), *map(str, images)]
    code, stdout, _ = run_cli(tool, argv + ['--out-dir', str(out_dir), '--save-maps'], capsys)
    assert code == 0 and 'wrote 2 attention figure(s) of block 3' in stdout
    vit, _ = load_encoder(tiny['cfg'], str(tiny['ckpt']))
    mean, std = normalisation(tiny['cfg'])
    for image in images:
        saved = np.load(out_dir / f'{image.stem}_block3.npz')
        x, _ = model_inputs([image], 64, mean, std)
        weights = block_attention(vit, x, -1)
        np.testing.assert_allclose(saved['cls_row'], weights[0, :, 0].numpy(), atol=1e-6)
        np.testing.assert_allclose(saved['cls_row'].sum(-1), [1.0, 1.0], atol=1e-5)
        assert saved['cls_maps'].shape == (2, 4, 4)
        png = np.asarray(Image.open(out_dir / f'{image.stem}_block3.png'))
        assert png.ndim == 3 and png.shape[0] > 100 and png.std() > 10  # drawn, not blank


@pytest.mark.needs_shared
def test_extracted_and_released_weights_load_and_give_the_same_maps(tiny, shared_path, tmp_path):
    """Every layout the loaders know yields the same encoder as the project's own loader."""
    sd = torch.load(tiny['ckpt'], weights_only=True)['state_dict']
    mean, std = normalisation(tiny['cfg'])
    x, _ = model_inputs([shared_path(f'{AID}/Port/port_4.jpg')], 64, mean, std)
    reference = block_attention(load_encoder(tiny['cfg'], str(tiny['ckpt']))[0], x)
    for fmt, prefix in (('pera', ''), ('mmpretrain', 'backbone.')):
        path = tmp_path / f'backbone_{fmt}.pth'
        save_weights_file(extract_backbone(sd, 'teacher', fmt, prefix), str(path), {})
        vit, layout = load_encoder(tiny['cfg'], str(path))
        assert layout == ('backbone' if fmt == 'pera' else 'backbone-mmpretrain')
        torch.testing.assert_close(block_attention(vit, x), reference, rtol=0, atol=0)
    # the released layout (a real recorded training step of the authors' code)
    released = torch.load(shared_path('parity/pera_parity_v1.pt'), weights_only=True)
    path = tmp_path / 'released.pth'
    torch.save({'model': OrderedDict(released['weights_after_step'])}, path)
    arch = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)
    cfg = tiny_config(tmp_path / 'released.py', arch, 128)
    vit, layout = load_encoder(cfg, str(path))
    assert layout == 'released'
    ref = build_backbone(cfg)
    load_vit_checkpoint(ref, str(path))
    x, _ = model_inputs([shared_path(f'{AID}/Port/port_4.jpg')], 128, mean, std)
    weights = block_attention(vit, x, 0)
    torch.testing.assert_close(weights, block_attention(ref, x, 0), rtol=0, atol=0)
    assert weights.shape == (1, 3, 65, 65)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 3, 65), rtol=0, atol=1e-5)


@pytest.mark.needs_shared
def test_bad_input_is_one_line(tool, tiny, shared_path, tmp_path, capsys):
    cfg, img = str(tiny['root'] / 'tiny.py'), str(shared_path(f'{AID}/Beach/beach_1.jpg'))
    out = ['--out-dir', str(tmp_path / 'o')]
    sd = torch.load(tiny['ckpt'], weights_only=True)['state_dict']
    student_only = tmp_path / 'student_only.pth'
    torch.save(
        {'state_dict': {k: v for k, v in sd.items() if not k.startswith('teacher.')}}, student_only
    )
    (tmp_path / 'empty').mkdir()
    cases = [
        ([cfg, str(tmp_path / 'missing.pth'), img], 5, 'no such checkpoint file'),
        ([cfg, str(student_only), img], 4, 'without teacher weights'),
        ([cfg, str(tiny['ckpt']), str(tmp_path / 'empty')], 4, 'no images'),
        ([cfg, str(tiny['ckpt']), img, '--block', '4'], 3, '--block 4: the backbone has 4 blocks'),
    ]
    for argv, code, text in cases:
        got, _, err = run_cli(tool, argv + out, capsys)
        assert got == code, err
        assert one_error_line(err).startswith('attention_maps: ') and text in one_error_line(err), (
            err
        )
    with pytest.raises(SystemExit) as e:
        tool.parse_args(['--help'])
    assert e.value.code == 0 and '--block' in capsys.readouterr().out


def test_stopping_at_the_block_leaves_no_hook_behind(tiny):
    vit, _ = load_encoder(tiny['cfg'], str(tiny['ckpt']))
    x = torch.randn(2, 3, 64, 64)
    block_attention(vit, x, 0)
    assert all(not blk.attn._forward_pre_hooks for blk in vit.blocks)
    torch.testing.assert_close(vit.forward_sparse(x, None), vit.forward_sparse(x, None))


def test_weights_follow_qv_bias_rope_and_registers():
    """With the public-weight options, weights @ v -> proj still equals the block's output."""
    from pera_mm.models.backbones.pera_vit import PerAViT
    from pera_mm.visualization import block_attention

    torch.manual_seed(0)
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    vit = PerAViT(
        arch=arch, img_size=32, patch_size=8, num_register_tokens=2, qkv_bias='qv',
        rope=dict(), pos_embed_layout='none',
    ).eval()  # fmt: skip
    for p in vit.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(1, 3, 32, 32)
    weights = block_attention(vit, x, -1)
    attn, captured = vit.blocks[-1].attn, {}

    def grab(module, args, kwargs):
        captured['x'], captured['rope'] = args[0], kwargs.get('rope')

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        vit.forward_sparse(x, None)
        handle.remove()
        out = attn(captured['x'], rope=captured['rope'])
        B, N, C = captured['x'].shape
        v = attn.qkv_projection(captured['x']).reshape(B, N, 3, 2, C // 2)[:, :, 2].transpose(1, 2)
        mine = attn.proj((weights @ v).transpose(1, 2).reshape(B, N, C))
    assert weights.shape == (1, 2, 1 + 2 + 16, 1 + 2 + 16)
    torch.testing.assert_close(mine, out, rtol=1e-5, atol=1e-5)
    assert cls_attention_maps(weights, (4, 4), 3).shape == (1, 2, 4, 4)
