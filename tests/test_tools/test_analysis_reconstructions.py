"""tools/analysis_tools/reconstructions.py: patch layout, prediction panels, loaders, errors."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from pera_mm.datasets.transforms.disjoint_mask_generator import disjoint_counts
from pera_mm.models.losses import PixelMSELoss
from pera_mm.structures import MASK_L, MASK_S, MASK_T, patchify, unpatchify
from pera_mm.testing import PERA_CONFIG, REPO_ROOT, TINY_ARCH, make_pera_checkpoint
from pera_mm.testing.config_shrink import shrink_model_config
from pera_mm.utils.checkpoint_convert import extract_backbone, save_weights_file
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.visualization import (
    HIDDEN_FILL,
    build_pera_model,
    configured_mask_ratios,
    draw_disjoint_mask,
    load_reconstruction_weights,
    model_inputs,
    normalisation,
    reconstruct,
)

TOOL = REPO_ROOT / 'tools/analysis_tools/reconstructions.py'
AID = 'AID_150px/AID'


def small_config(path, arch=TINY_ARCH, img_size=64, **heads):
    cfg = Config.fromfile(PERA_CONFIG)
    heads = heads or dict(prototypes=256, hidden_channels=96, bottleneck_channels=32)
    cfg.model = shrink_model_config(cfg.model, arch, img_size, **heads)
    cfg.dump(str(path))
    return Config.fromfile(str(path))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('recon')
    ckpt, _ = make_pera_checkpoint(root / 'pera.pth')
    cfg = small_config(root / 'tiny.py')
    model = build_pera_model(cfg)
    load_reconstruction_weights(model, str(ckpt))
    return dict(root=root, ckpt=ckpt, cfg=cfg, model=model)


def one_error_line(err: str) -> str:
    """The tool's error: one line after any progress-bar output, and no traceback."""
    assert 'Traceback' not in err, err
    return err.rstrip('\n').split('\n')[-1]


def run_cli(tool, argv, capsys):
    code = 0
    try:
        PeraCliErrors.run(tool.main, argv, tool='reconstructions')
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.needs_shared
def test_patchify_round_trip_in_the_p_p_3_layout(shared_path):
    img = np.asarray(Image.open(shared_path(f'{AID}/Bridge/bridge_1.jpg')).convert('RGB'))
    x = torch.from_numpy(img[:144, :144].copy()).permute(2, 0, 1).float()[None]  # 9 x 9 patches
    patches = patchify(x, 16)
    assert patches.shape == (1, 81, 768)
    cube = patches.view(1, 81, 16, 16, 3)
    for r, c, i, j, ch in ((0, 0, 0, 0, 0), (2, 7, 5, 11, 1), (8, 8, 15, 15, 2), (4, 1, 9, 3, 0)):
        assert cube[0, r * 9 + c, i, j, ch] == img[r * 16 + i, c * 16 + j, ch]
    torch.testing.assert_close(unpatchify(patches, 16, (9, 9), 3), x, rtol=0, atol=0)


def test_masks_have_the_pipeline_sizes():
    flags = draw_disjoint_mask(16, (0.2, 0.2, 0.6), torch.Generator().manual_seed(0))
    counts = [(flags == f).sum().item() for f in (MASK_S, MASK_L, MASK_T)]
    assert tuple(counts) == disjoint_counts(16, (0.2, 0.2, 0.6)) == (3, 3, 10)


@pytest.mark.needs_shared
def test_prediction_panel_is_the_denormalised_pixel_head_output(tiny, shared_path):
    model, cfg = tiny['model'], tiny['cfg']
    assert configured_mask_ratios(cfg) == (0.2, 0.2, 0.6)
    mean, std = normalisation(cfg)
    x, pixels = model_inputs([shared_path(f'{AID}/Farmland/farmland_5.jpg')], 64, mean, std)
    flags = draw_disjoint_mask(16, (0.2, 0.2, 0.6), torch.Generator().manual_seed(3))
    out = reconstruct(model, x, flags, mean, std)
    s_idx, l_idx = (torch.nonzero(flags == f)[:, 0] for f in (MASK_S, MASK_L))
    with torch.no_grad():
        _, l_out = model.backbone.forward_student(x, s_idx[None], l_idx[None], model.mask_token)
        head = model.predictor(l_out)[0]
    expected = head.view(-1, 16, 16, 3) * std + mean  # (p, p, 3) channel-last per patch
    for n, k in enumerate(l_idx.tolist()):
        r, c = divmod(k, 4)
        got = out['prediction'][:, r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16]
        torch.testing.assert_close(got.permute(1, 2, 0), expected[n], rtol=0, atol=1e-4)
    for k in range(16):
        r, c = divmod(k, 4)
        window = (slice(None), slice(r * 16, (r + 1) * 16), slice(c * 16, (c + 1) * 16))
        if flags[k] == MASK_S:  # the student's visible patches, as in the input
            torch.testing.assert_close(
                out['prediction'][window], pixels[0][window], atol=1e-4, rtol=0
            )
            torch.testing.assert_close(out['masked'][window], pixels[0][window], atol=1e-4, rtol=0)
        elif flags[k] == MASK_T:
            assert (out['prediction'][window] == HIDDEN_FILL).all()
        if flags[k] != MASK_S:
            assert (out['masked'][window] == HIDDEN_FILL).all()
    torch.testing.assert_close(out['target'], pixels[0], atol=1e-4, rtol=0)
    target = patchify(x, 16)[0, l_idx]
    loss = PixelMSELoss(loss_weight=1.0, reduction='patch_sum')(head, target)
    assert out['mse'] == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.needs_shared
def test_cli_rows_per_ratio_and_json(load_script, tiny, shared_path, tmp_path, capsys):
    tool = load_script(TOOL)
    images = [shared_path(f'{AID}/Desert/desert_1.jpg'), shared_path(f'{AID}/River/river_2.jpg')]
    argv = [str(tiny['root'] / 'tiny.py'), str(tiny['ckpt']), *map(str, images)]
    png, js = tmp_path / 'recon.png', tmp_path / 'recon.json'
    ratios = ['--mask-ratios', '0.2,0.2,0.6', '0.3,0.2,0.5']
    code, stdout, err = run_cli(
        tool, argv + ratios + ['--out', str(png), '--json', str(js)], capsys
    )
    assert code == 0, err
    assert 'wrote 4 reconstruction row(s)' in stdout
    rows = __import__('json').loads(js.read_text())
    assert [r['ratios'] for r in rows] == [[0.2, 0.2, 0.6], [0.3, 0.2, 0.5]] * 2
    # the same seed gives the same masks: recompute the first row's mse by hand
    mean, std = normalisation(tiny['cfg'])
    flags = draw_disjoint_mask(16, (0.2, 0.2, 0.6), torch.Generator().manual_seed(0))
    x, _ = model_inputs([images[0]], 64, mean, std)
    first = reconstruct(tiny['model'], x, flags, mean, std)
    assert rows[0]['l_idx'] == first['l_idx'].tolist()
    assert rows[0]['mse'] == pytest.approx(first['mse'], rel=1e-6)
    assert len(rows[1]['l_idx']) == disjoint_counts(16, (0.3, 0.2, 0.5))[1]
    figure = np.asarray(Image.open(png))
    assert figure.shape[0] > figure.shape[1] * 0.9 and figure.std() > 10  # 4 rows x 3 panels


@pytest.mark.needs_shared
def test_released_full_checkpoint_reconstructs(shared_path, tmp_path):
    released = torch.load(shared_path('parity/pera_parity_v1.pt'), weights_only=True)
    path = tmp_path / 'released.pth'
    torch.save({'model': OrderedDict(released['weights_after_step'])}, path)
    arch = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)
    cfg = small_config(
        tmp_path / 'released.py',
        arch,
        128,
        prototypes=1024,
        hidden_channels=512,
        bottleneck_channels=128,
    )
    model = build_pera_model(cfg)
    load_reconstruction_weights(model, str(path))
    weights = released['weights_after_step']
    torch.testing.assert_close(model.mask_token, weights['s_mask_token'], rtol=0, atol=0)
    torch.testing.assert_close(
        model.predictor.last_layer.weight_v,
        weights['pred_head.last_layer.weight_v'],
        rtol=0,
        atol=0,
    )
    mean, std = normalisation(cfg)
    x, _ = model_inputs([shared_path(f'{AID}/Church/church_1.jpg')], 128, mean, std)
    out = reconstruct(
        model, x, draw_disjoint_mask(64, (0.2, 0.2, 0.6), torch.Generator()), mean, std
    )
    assert out['predicted_patches'].shape == (disjoint_counts(64, (0.2, 0.2, 0.6))[1], 768)
    assert np.isfinite(out['mse'])


@pytest.mark.needs_shared
def test_bad_input_is_one_line(load_script, tiny, shared_path, tmp_path, capsys):
    tool = load_script(TOOL)
    cfg, img = str(tiny['root'] / 'tiny.py'), str(shared_path(f'{AID}/Beach/beach_1.jpg'))
    sd = torch.load(tiny['ckpt'], weights_only=True)['state_dict']
    backbone = tmp_path / 'backbone.pth'
    save_weights_file(extract_backbone(sd, 'teacher'), str(backbone), {})
    no_pred = Config.fromfile(cfg)
    no_pred.model.predictor = None
    no_pred.model.pixel_loss = None
    no_pred.dump(str(tmp_path / 'no_pred.py'))
    out = ['--out', str(tmp_path / 'x.png')]
    cases = [
        ([cfg, str(tmp_path / 'nope.pth'), img], 5, 'no such checkpoint file'),
        ([cfg, str(backbone), img], 4, 'not an extracted backbone'),
        ([str(tmp_path / 'no_pred.py'), str(tiny['ckpt']), img], 3, 'model.predictor is not set'),
        ([cfg, str(tiny['ckpt']), img, '--mask-ratios', '0.02,0.02,0.96'], 3, 'leave an empty set'),
    ]
    for argv, code, text in cases:
        got, _, err = run_cli(tool, argv + out, capsys)
        assert got == code, err
        assert one_error_line(err).startswith('reconstructions: ') and text in one_error_line(
            err
        ), err
    with pytest.raises(SystemExit) as e:
        tool.parse_args(['--help'])
    assert e.value.code == 0 and '--mask-ratios' in capsys.readouterr().out


@pytest.mark.needs_shared
def test_norm_pix_predictions_get_the_target_patch_statistics_back(tiny, shared_path):
    model, cfg = tiny['model'], tiny['cfg']
    mean, std = normalisation(cfg)
    x, _ = model_inputs([shared_path(f'{AID}/Meadow/meadow_2.jpg')], 64, mean, std)
    flags = draw_disjoint_mask(16, (0.2, 0.2, 0.6), torch.Generator().manual_seed(5))
    model.pixel_loss.norm_pix = True
    try:
        out = reconstruct(model, x, flags, mean, std)
    finally:
        model.pixel_loss.norm_pix = False
    s_idx, l_idx = (torch.nonzero(flags == f)[:, 0] for f in (MASK_S, MASK_L))
    with torch.no_grad():
        _, l_out = model.backbone.forward_student(x, s_idx[None], l_idx[None], model.mask_token)
        head = model.predictor(l_out)[0]
    target = patchify(x, 16)[0, l_idx]
    mu, sigma = target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6).sqrt()
    expected = (head * sigma + mu).view(-1, 16 * 16, 3) * std + mean
    torch.testing.assert_close(out['predicted_patches'], expected.view(-1, 768), rtol=0, atol=1e-4)
    loss = PixelMSELoss(loss_weight=1.0, norm_pix=True)(head, target)
    assert out['mse'] == pytest.approx(loss.item(), rel=1e-5)
