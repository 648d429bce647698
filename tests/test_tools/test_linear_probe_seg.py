"""Linear-probe segmentation: the per-patch head, the frozen encoder and the 3-seed tool.

The tool runs on real Sentinel-2 pixels: 64 px tiles of the OSCD 4-band stacks with the
OSCD change maps (file values {1, 2} mapped to {0, 1}) as labels.
"""

import json
import statistics

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import pera_mm  # noqa: F401  (registration)
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.oscd_pairs import write_oscd_seg_tiles
from pera_mm.utils import PeraConfigError

TOOL = REPO_ROOT / 'tools/analysis_tools/linear_probe_seg.py'
CONFIG = REPO_ROOT / (
    'configs/linear_probe/'
    'linear-probe_latent-mim-vit-tiny-p16_1xb8-40iter_oscd-cm-64px_cpu-smoke.py'
)
TINY = dict(embed_dims=64, num_layers=4, num_heads=2, in_channels=4, patch_size=16, projector=None)


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build in the mmseg scope whatever scope an earlier test left current."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_head_maps_each_patch_to_its_pixels():
    head = MODELS.build(dict(type='PatchLinearSegHead', in_channels=3, num_classes=2, patch_size=2))
    assert head.conv_seg.weight.shape == (8, 3, 1, 1)
    with torch.no_grad():
        head.conv_seg.weight.zero_()
        head.conv_seg.bias.zero_()
        head.conv_seg.weight[:, 0, 0, 0] = torch.arange(1.0, 9.0)  # channel k -> (k + 1) x f0
    feats = torch.randn(2, 3, 3, 4)
    logits = head([feats])
    assert logits.shape == (2, 2, 6, 8)
    # class c at pixel (2u + i, 2v + j) = (c * 4 + i * 2 + j + 1) x feature 0 of patch (u, v)
    for c, u, v, i, j in [(0, 0, 0, 0, 0), (1, 2, 3, 1, 0), (0, 1, 2, 0, 1), (1, 0, 1, 1, 1)]:
        expected = (c * 4 + i * 2 + j + 1) * feats[1, 0, u, v]
        assert logits[1, c, 2 * u + i, 2 * v + j].item() == pytest.approx(expected.item())
    with pytest.raises(PeraConfigError, match='patch_size must be a positive int'):
        MODELS.build(dict(type='PatchLinearSegHead', in_channels=3, num_classes=2, patch_size=0))


def _probe(**backbone):
    return MODELS.build(
        dict(
            type='LinearProbeEncoderDecoder',
            backbone=dict(
                type='mmpretrain.LatentMIMViT', out_type='featmap', **dict(TINY, **backbone)
            ),
            decode_head=dict(
                type='PatchLinearSegHead', in_channels=64, num_classes=3, patch_size=16
            ),
        )
    )


def test_only_the_head_learns():
    model = _probe()
    model.train()
    assert not model.backbone.training and model.decode_head.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    x = torch.randn(2, 4, 32, 48)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 48)))
        s.set_metainfo(dict(img_shape=(32, 48), pad_shape=(32, 48)))
        samples.append(s)
    losses = model.loss(x, samples)
    losses['decode.loss_ce'].backward()
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    with pytest.raises(PeraConfigError, match='takes no neck'):
        MODELS.build(
            dict(
                type='LinearProbeEncoderDecoder',
                backbone=dict(type='mmpretrain.LatentMIMViT', **TINY),
                neck=dict(type='Feature2Pyramid', embed_dim=64),
                decode_head=dict(
                    type='PatchLinearSegHead', in_channels=64, num_classes=3, patch_size=16
                ),
            )
        )


@pytest.fixture(scope='module')
def latent_mim_checkpoint(tmp_path_factory):
    """A LatentMIM checkpoint (our names) holding a 4-band TINY encoder as the EMA target."""
    torch.manual_seed(7)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = PRETRAIN_MODELS.build(dict(type='LatentMIMViT', **TINY))
    vit.init_weights()
    state = {f'target.{k}': v.clone() for k, v in vit.state_dict().items()}
    path = tmp_path_factory.mktemp('ckpt') / 'latent_mim_tiny_4band.pth'
    torch.save(dict(state_dict=state), path)
    return path, {k[len('target.') :]: v for k, v in state.items()}


@pytest.mark.needs_shared
def test_tool_prints_miou_of_three_seeds(
    shared_path, tmp_path, latent_mim_checkpoint, load_script, capsys
):
    counts = write_oscd_seg_tiles(shared_path('OSCD'), tmp_path / 'data', tile=64)
    assert counts == dict(train=30, val=36)
    ckpt, encoder = latent_mim_checkpoint
    tool = load_script(TOOL)
    iters = 6
    argv = [
        str(CONFIG),
        str(ckpt),
        '--data-root',
        str(tmp_path / 'data'),
        '--work-dir',
        str(tmp_path / 'work'),
        '--json',
        str(tmp_path / 'probe.json'),
        '--cfg-options',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]
    summary = tool.main(argv)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(('seed ', 'mIoU over'))]
    assert len(lines) == 4, out
    for seed, line in zip((0, 1, 2), lines):
        assert line.startswith(f'seed {seed}: mIoU ')
        assert f'30 train / 36 test samples, {iters} iterations, encoder unchanged' in line
    values = summary['mIoU']
    assert len(values) == 3 and all(0.0 < v <= 100.0 for v in values)
    assert summary['mIoU_mean'] == pytest.approx(statistics.fmean(values))
    assert summary['mIoU_std'] == pytest.approx(statistics.stdev(values))
    assert lines[3].startswith(
        f'mIoU over 3 seeds: {summary["mIoU_mean"]:.2f} ± {summary["mIoU_std"]:.2f}'
    )
    assert json.loads((tmp_path / 'probe.json').read_text())['mIoU'] == values
    # the frozen encoder after training is the checkpoint's, bit for bit, for every seed
    for seed in (0, 1, 2):
        saved = torch.load(tmp_path / f'work/seed_{seed}/iter_{iters}.pth', map_location='cpu')
        backbone = {
            k[len('backbone.') :]: v
            for k, v in saved['state_dict'].items()
            if k.startswith('backbone.')
        }
        assert backbone.keys() == encoder.keys()
        assert all(torch.equal(backbone[k], encoder[k]) for k in encoder)
    heads = [
        torch.load(tmp_path / f'work/seed_{s}/iter_{iters}.pth', map_location='cpu')['state_dict'][
            'decode_head.conv_seg.weight'
        ]
        for s in (0, 1)
    ]
    assert not torch.equal(heads[0], heads[1])  # each seed trains its own head


def test_tool_one_line_errors(tmp_path, load_script, capsys):
    tool = load_script(TOOL)
    with pytest.raises(SystemExit) as exit_:
        tool.main(['--help'])
    assert exit_.value.code == 0 and 'exit codes' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(CONFIG), str(tmp_path / 'missing.pth')])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 5 and '\n' not in err
    missing = tmp_path / 'missing.pth'
    assert err == f'linear_probe_seg.py: file not found: checkpoint {missing} does not exist'
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(CONFIG), '--seeds', '1', '1'])
    assert exit_.value.code == 3 and 'repeats a seed' in capsys.readouterr().err


ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
BACKBONES = {
    'latent_mim': (dict(type='mmpretrain.LatentMIMViT', **TINY), 16, (80, 64)),
    'ijepa': (
        dict(type='mmpretrain.IJEPAViT', arch=ARCH, img_size=56, patch_size=14, in_channels=4),
        14,
        (70, 70),
    ),
    'pera': (
        dict(type='mmpretrain.PerAViT', arch=ARCH, img_size=64, patch_size=16, in_channels=4),
        16,
        (80, 64),
    ),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_inputs_are_padded_to_the_patch_grid_and_cropped_back(name):
    """70 x 60 px images, padded to the patch grid (p = 16: 80 x 64, p = 14: 70 x 70) for
    each of our ViTs, predictions cropped back to 70 x 60."""
    backbone, patch, padded = BACKBONES[name]
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(
            dict(
                type='LinearProbeEncoderDecoder',
                data_preprocessor=dict(
                    type='SegDataPreProcessor',
                    mean=[0.0] * 4,
                    std=[1.0] * 4,
                    size_divisor=patch,
                    pad_val=0,
                    seg_pad_val=255,
                    test_cfg=dict(size_divisor=patch),
                ),
                backbone=dict(backbone, out_type='featmap'),
                decode_head=dict(
                    type='PatchLinearSegHead', in_channels=64, num_classes=3, patch_size=patch
                ),
                test_cfg=ConfigDict(mode='whole'),
            )
        )
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 70, 60)))
        s.set_metainfo(dict(img_shape=(70, 60), ori_shape=(70, 60)))
        samples.append(s)
    data = dict(inputs=[torch.rand(4, 70, 60) for _ in range(2)], data_samples=samples)
    batch = model.data_preprocessor(data, training=True)
    assert batch['inputs'].shape == (2, 4, *padded)
    label = batch['data_samples'][0].gt_sem_seg.data
    assert label.shape == (1, *padded) and (label[:, 70:] == 255).all()
    assert (label[:, :, 60:] == 255).all() and (label[:, :70, :60] < 3).all()  # pads ignored
    model.eval()
    (pred, _) = model.test_step(dict(inputs=data['inputs'], data_samples=samples))
    assert pred.pred_sem_seg.data.shape == (1, 70, 60)
    assert pred.seg_logits.data.shape == (3, 70, 60)
    # cropped, not resized: the top-left 70 x 60 of the padded image's logits
    padded_inputs = model.data_preprocessor(data, training=False)['inputs']
    with torch.no_grad():
        full = model.decode_head(model.backbone(padded_inputs))
    assert full.shape == (2, 3, *padded)
    assert torch.allclose(pred.seg_logits.data, full[0, :, :70, :60], atol=1e-5)


BASES = {
    # base file: (arch override, checkpoint prefix of the encoder, patch, padded 240 / 256 px)
    'latent-mim-vit-small-p16': (
        dict(embed_dims=64, num_layers=2, num_heads=2),
        'target.',
        16,
        (240, 256),
    ),
    'ijepa-vit-small-p14': (dict(arch=ARCH), 'target_encoder.', 14, (252, 266)),
    'pera-vit-small-p16': (dict(arch=ARCH), 'teacher.backbone.', 16, (240, 256)),
}


@pytest.mark.parametrize('name', sorted(BASES))
def test_base_configs_load_the_encoder_and_predict_at_input_size(name, tmp_path):
    """Each probe base (shrunk to 64 wide, 2 blocks) loads its host's checkpoint layout
    bit for bit and predicts MADOS (240 px) and GEO-Bench (256 px) tiles at their size."""
    from mmengine.config import Config

    arch, prefix, patch, padded = BASES[name]
    cfg = Config.fromfile(REPO_ROOT / f'configs/linear_probe/_base_/linear-probe_{name}_4band.py')
    cfg.model.backbone.update(arch)
    cfg.model.decode_head.in_channels = 64
    assert cfg.model.backbone.patch_size == cfg.model.decode_head.patch_size == patch
    assert cfg.model.data_preprocessor.size_divisor == patch
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        source = PRETRAIN_MODELS.build(
            {k: v for k, v in cfg.model.backbone.items() if k != 'init_cfg'}
            | dict(type=cfg.model.backbone.type.split('.')[-1])
        )
    torch.manual_seed(3)
    for p in source.parameters():
        p.data.normal_()
    state = {f'{prefix}{k}': v.clone() for k, v in source.state_dict().items()}
    torch.save(dict(state_dict=state), tmp_path / 'ckpt.pth')
    init = dict(cfg.model.backbone.get('init_cfg') or dict(type='Pretrained'))
    cfg.model.backbone.init_cfg = dict(init, checkpoint=str(tmp_path / 'ckpt.pth'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    model.eval()
    for size, pad in zip((240, 256), padded):
        s = SegDataSample()
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size)))
        data = dict(inputs=[torch.rand(4, size, size) * 3000], data_samples=[s])
        assert model.data_preprocessor(data)['inputs'].shape[-2:] == (pad, pad)
        (pred,) = model.test_step(data)
        assert pred.pred_sem_seg.data.shape == (1, size, size)


def test_probe_config_sets_seed_checkpoint_and_data_root(load_script):
    from mmengine.config import Config

    tool = load_script(TOOL)
    base = Config.fromfile(
        REPO_ROOT / 'configs/linear_probe/_base_/linear-probe_ijepa-vit-small-p14_4band.py'
    )
    with_ckpt = tool.probe_config(base, 'a.pth', 5, 'w/seed_5')
    assert with_ckpt.randomness.seed == 5 and with_ckpt.work_dir == 'w/seed_5'
    assert with_ckpt.model.backbone.init_cfg == dict(
        type='Pretrained', prefix='target_encoder.', checkpoint='a.pth'
    )
    # without a checkpoint: the random-init baseline (a Pretrained init without file dropped)
    assert tool.probe_config(base, None, 0, 'w').model.backbone.init_cfg is None
    smoke = tool.probe_config(Config.fromfile(CONFIG), None, 0, 'w', data_root='/data/x')
    assert smoke.train_dataloader.dataset.data_root == '/data/x'
    assert smoke.test_dataloader.dataset.data_root == '/data/x'
    assert Config.fromfile(CONFIG).train_dataloader.dataset.data_root == 'data/oscd_cm_64px'
