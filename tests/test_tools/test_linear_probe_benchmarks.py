"""The benchmark linear-probe configs (GEO-Bench m-cashew-plant, m-SA-crop-type, MADOS).

Three host encoders x three benchmarks. No GEO-Bench or MADOS sample is available here:
``pera_mm.testing.geobench_mados_fixtures`` writes both layouts from the real OSCD
Sentinel-2 pixels (the OSCD change maps, {1, 2}, as labels; the classes are not the
benchmarks' own). Checks: every config builds its model and datasets on those roots,
the GEO-Bench statistics come from the task's band_stats.json, the 3-seed tool runs on
both layouts, and missing band statistics are a one-line error naming the field.
"""

import json
import statistics

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS, MODELS

import pera_mm  # noqa: F401  (registration)
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.geobench_mados_fixtures import oscd_city, write_geobench_task, write_mados_root
from pera_mm.utils import PeraConfigError
from pera_mm.utils.errors import PeraFileNotFoundError

PROBES = REPO_ROOT / 'configs/linear_probe'
TOOL = REPO_ROOT / 'tools/analysis_tools/linear_probe_seg.py'
ENCODERS = {  # config name -> patch size
    'latent-mim-vit-small-p16': 16,
    'ijepa-vit-small-p14': 14,
    'pera-vit-small-p16': 16,
}
BENCHMARKS = {  # config name -> (dataset base, classes, side, fixture)
    'geobench-m-cashew-plant-256px': ('geobench_m-cashew-plant_256x256.py', 7, 256, 'cashew'),
    'geobench-m-sa-crop-type-256px': ('geobench_m-sa-crop-type_256x256.py', 10, 256, 'sa'),
    'mados-240px': ('mados_240x240.py', 15, 240, 'mados'),
}
# (name, city, y0, x0, split) and (scene, crop, city, y0, x0, split): 2 train / 1 val / 1 test
GEOBENCH_CROPS = [
    ('sample_0', 'paris', 0, 0, 'train'),
    ('sample_1', 'bercy', 139, 104, 'train'),
    ('sample_2', 'paris', 152, 134, 'valid'),
    ('sample_3', 'bercy', 0, 0, 'test'),
]
MADOS_CROPS = [
    (0, '1', 'paris', 0, 0, 'train'),
    (1, '3', 'bercy', 155, 120, 'train'),
    (0, '2', 'paris', 168, 150, 'val'),
    (1, '7', 'bercy', 0, 0, 'test'),
]
MADOS_MEAN = [0.05223386, 0.04381474, 0.0357083, 0.03566642]
MADOS_STD = [0.03432253, 0.0354812, 0.0375769, 0.05545856]


def leaf(encoder: str, task: str):
    return PROBES / f'linear-probe_{encoder}_1xb16-4k_{task}.py'


@pytest.fixture(scope='module')
def roots(shared_data, tmp_path_factory):
    """The three fixture roots, written once from real OSCD pixels."""
    cities = {city: oscd_city(shared_data, city) for city in ('paris', 'bercy')}
    base = tmp_path_factory.mktemp('benchmarks')
    write_geobench_task(base / 'm-cashew-plant', cities, GEOBENCH_CROPS, date='2019-11-10')
    write_geobench_task(base / 'm-SA-crop-type', cities, GEOBENCH_CROPS)
    write_mados_root(base / 'MADOS', cities, MADOS_CROPS)
    return dict(cashew=base / 'm-cashew-plant', sa=base / 'm-SA-crop-type', mados=base / 'MADOS')


def test_there_is_one_config_per_encoder_and_benchmark():
    shipped = {p.name for p in PROBES.glob('linear-probe_*_1xb16-4k_*.py')}
    assert shipped == {leaf(e, b).name for e in ENCODERS for b in BENCHMARKS}


@pytest.mark.needs_shared
@pytest.mark.parametrize('task', sorted(BENCHMARKS))
@pytest.mark.parametrize('encoder', sorted(ENCODERS))
def test_every_config_builds_its_model_and_datasets(encoder, task, roots, load_script):
    """Full-size ViT-S probe, datasets on the fixture root (through the tool's --data-root),
    band statistics, head width, padding, and a prediction at the input size."""
    tool = load_script(TOOL)
    _, classes, side, kind = BENCHMARKS[task]
    patch = ENCODERS[encoder]
    cfg = tool.probe_config(Config.fromfile(leaf(encoder, task)), None, 0, 'w', roots[kind])
    assert cfg.model.backbone.get('init_cfg') is None  # no checkpoint: the random-init baseline
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        datasets = {s: DATASETS.build(cfg[f'{s}_dataloader'].dataset) for s in ('train', 'test')}
    if kind == 'mados':
        mean, std = MADOS_MEAN, MADOS_STD
    else:  # read from the fixture's band_stats.json when the model is built
        stats = json.loads((roots[kind] / 'band_stats.json').read_text())
        names = ('02 - Blue', '03 - Green', '04 - Red', '08 - NIR')
        mean, std = [stats[n]['mean'] for n in names], [stats[n]['std'] for n in names]
        assert datasets['train'].band_stats() == dict(mean=mean, std=std)
    preprocessor = model.data_preprocessor
    np.testing.assert_allclose(preprocessor.mean.flatten().numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(preprocessor.std.flatten().numpy(), std, rtol=1e-6)
    assert model.decode_head.conv_seg.out_channels == classes * patch**2
    assert [len(datasets['train']), len(datasets['test'])] == [2, 1]
    assert len(datasets['test'].metainfo['classes']) == classes
    model.eval()
    sample = datasets['test'][0]
    data = dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']])
    padded = -(-side // patch) * patch  # 256 / 240 px; at p = 14: 266 / 252 px
    assert model.data_preprocessor(data)['inputs'].shape == (1, 4, padded, padded)
    (pred,) = model.test_step(data)
    assert pred.pred_sem_seg.data.shape == (1, side, side)
    assert pred.pred_sem_seg.data.max() < classes


TINY = {  # a tiny encoder of each host, to keep the tool runs short
    'latent-mim-vit-small-p16': dict(embed_dims=64, num_layers=2, num_heads=2),
    'ijepa-vit-small-p14': dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    ),
}


def tiny_config(tmp_path, encoder, task, iters=3):
    """A config inheriting the leaf with a tiny encoder, batch 2 and ``iters`` iterations."""
    loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
    text = f"""_base_ = [{str(leaf(encoder, task))!r}]
model = dict(backbone={TINY[encoder]!r}, decode_head=dict(in_channels=64))
train_dataloader = {loader!r}
val_dataloader = {loader!r}
test_dataloader = {loader!r}
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0,
                        end={iters})]
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(checkpoint=dict(interval={iters}))
"""
    path = tmp_path / f'tiny_{encoder}_{task}.py'
    path.write_text(text)
    return path


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'encoder, task',
    [
        ('latent-mim-vit-small-p16', 'geobench-m-cashew-plant-256px'),
        ('ijepa-vit-small-p14', 'mados-240px'),  # padded 240 -> 252 px
    ],
)
def test_tool_prints_miou_of_three_seeds(encoder, task, roots, tmp_path, load_script, capsys):
    tool = load_script(TOOL)
    kind = BENCHMARKS[task][3]
    config = tiny_config(tmp_path, encoder, task)
    argv = [str(config), '--data-root', str(roots[kind]), '--work-dir', str(tmp_path / 'work')]
    summary = tool.main(argv + ['--json', str(tmp_path / 'probe.json')])
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(('seed ', 'mIoU over'))]
    assert len(lines) == 4, out
    values = summary['mIoU']
    for seed, line, value in zip((0, 1, 2), lines, values):
        assert line.startswith(f'seed {seed}: mIoU {value:.2f} ')
        assert '2 train / 1 test samples, 3 iterations, encoder unchanged' in line
    assert len(values) == 3 and all(0.0 <= v <= 100.0 for v in values)
    assert summary['mIoU_mean'] == pytest.approx(statistics.fmean(values))
    assert summary['mIoU_std'] == pytest.approx(statistics.stdev(values))
    shown = ', '.join(f'{v:.2f}' for v in values)
    assert lines[3] == (
        f'mIoU over 3 seeds: {summary["mIoU_mean"]:.2f} ± {summary["mIoU_std"]:.2f} '
        f'(sample std) [{shown}]'
    )
    assert json.loads((tmp_path / 'probe.json').read_text())['mIoU'] == values
    heads = [
        torch.load(tmp_path / f'work/seed_{s}/iter_3.pth', map_location='cpu')['state_dict'][
            'decode_head.conv_seg.weight'
        ]
        for s in (0, 1)
    ]
    assert not torch.equal(heads[0], heads[1])  # each seed trains its own head


def _build(model_cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(model_cfg)


def _tiny_model_cfg(task='geobench-m-cashew-plant-256px'):
    cfg = Config.fromfile(leaf('latent-mim-vit-small-p16', task)).model
    cfg.backbone.update(TINY['latent-mim-vit-small-p16'])
    cfg.decode_head.in_channels = 64
    return cfg


def test_missing_band_statistics_are_a_one_line_error(tmp_path, load_script, capsys):
    """MMSeg would skip the normalisation silently; the probe names the field instead."""
    cfg = _tiny_model_cfg()
    cfg.band_stats = None  # the GEO-Bench base's band_mean / band_std are None
    with pytest.raises(PeraConfigError) as err:
        _build(cfg)
    assert str(err.value).startswith('model.data_preprocessor.mean is None: ')
    assert '\n' not in str(err.value)
    cfg.data_preprocessor.mean = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(PeraConfigError, match=r'^model\.data_preprocessor\.std is None'):
        _build(cfg)
    cfg.data_preprocessor.std = [1.0, 1.0, 1.0]
    with pytest.raises(PeraConfigError, match=r'std 3, expected one per input band \(4\)'):
        _build(cfg)
    # the tool (and tools/train.py, same model build): exit code 3 and that one line
    tool = load_script(TOOL)
    config = leaf('latent-mim-vit-small-p16', 'geobench-m-sa-crop-type-256px')
    with pytest.raises(SystemExit) as exit_:
        tool.main(
            [str(config), '--work-dir', str(tmp_path), '--cfg-options', 'model.band_stats=None']
        )
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith('linear probe:')]
    assert exit_.value.code == 3 and len(lines) == 1
    assert lines[0].startswith(
        'linear_probe_seg.py: config error: model.data_preprocessor.mean is None: '
    )


def test_band_stats_errors_name_the_field(tmp_path):
    cfg = _tiny_model_cfg()
    cfg.band_stats.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(PeraFileNotFoundError) as err:
        _build(cfg)
    assert str(err.value) == (
        f'model.band_stats: {tmp_path}/nowhere/band_stats.json: GEO-Bench band statistics not found'
    )
    cfg.data_preprocessor.mean = [1.0] * 4
    with pytest.raises(PeraConfigError, match='model.band_stats and model.data_preprocessor.mean'):
        _build(cfg)
    cfg = _tiny_model_cfg()
    cfg.band_stats = dict(data_root=str(tmp_path), band=['B2'])
    with pytest.raises(PeraConfigError, match=r'model\.band_stats must be dict\(data_root='):
        _build(cfg)
    (tmp_path / 'band_stats.json').write_text(json.dumps({'02 - Blue': dict(mean=1, std=2)}))
    cfg.band_stats = dict(data_root=str(tmp_path), bands=['B2', 'B3', 'B4', 'B8'])
    with pytest.raises(Exception, match="model.band_stats: .*no statistics for band '03 - Green'"):
        _build(cfg)
