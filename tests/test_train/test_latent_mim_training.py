"""LatentMIM through tools/train.py: the RGB and the 4-band CPU smoke configs train 3
iterations with finite losses and the reference schedules (4-band: on .npy and GeoTIFF
crops of real OSCD Sentinel-2 bands); a crop size that is not a multiple of patch + gap
and a tile with the wrong band count stop with one line."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import read_scalars
from pera_mm.utils import generate_demo_dataset
from pera_mm.utils.cli import PeraCliErrors

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'
SMOKE_4BAND = (
    REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_npy-4band-80px_cpu-smoke.py'
)
OSCD = 'OSCD/Onera Satellite Change Detection dataset - Images'
BANDS = ('B02', 'B03', 'B04', 'B08')


@pytest.fixture(scope='module')
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp('lmim_tiles')
    generate_demo_dataset(root, num_images=12, size=96, seed=0)
    return root


@pytest.fixture(scope='module')
def s2_tiles(tmp_path_factory, shared_path):
    """12 crops (96 px, uint16 DN, B02/B03/B04/B08) of the four OSCD acquisitions:
    two per scene as (H, W, 4) .npy, one as a 4-band GeoTIFF."""
    root = tmp_path_factory.mktemp('lmim_s2')
    for city in ('bercy', 'paris'):
        for date in ('imgs_1', 'imgs_2'):
            folder = shared_path(f'{OSCD}/{city}/{date}')
            bands = []
            for band in BANDS:
                (path,) = sorted(folder.glob(f'*_{band}.tif'))
                with rasterio.open(path) as src:
                    bands.append(src.read(1))
            stack = np.stack(bands)  # (4, H, W)
            for i in range(3):
                crop = stack[:, 96 * i : 96 * i + 96, 100 : 100 + 96]
                name = root / f'{city}_{date}_{i}'
                if i < 2:
                    np.save(f'{name}.npy', np.ascontiguousarray(crop.transpose(1, 2, 0)))
                    continue
                with rasterio.open(
                    f'{name}.tif', 'w', driver='GTiff', width=96, height=96, count=4,
                    dtype='uint16',
                ) as dst:  # fmt: skip
                    dst.write(crop)
    return root


def train(load_script, work_dir: Path, data_root: Path, *options, config=SMOKE):
    """``tools/train.py SMOKE --work-dir ... --cfg-options data_root=... *options``, in-process."""
    script = load_script(REPO_ROOT / 'tools/train.py')
    argv = [str(config), '--work-dir', str(work_dir), '--cfg-options']
    return script.main([*argv, f'train_dataloader.dataset.data_root={data_root}', *options])


def test_smoke_config_trains_three_iterations(tiles, tmp_path, load_script, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(load_script, tmp_path / 'w', tiles)
    rows = [r for r in read_scalars(tmp_path / 'w') if 'loss' in r]
    assert [r['iter'] for r in rows] == [1, 2, 3]
    for r in rows:
        for key in ('loss', 'loss_infonce', 'loss_sim_pred', 'loss_sim_vis'):
            assert r[key] == r[key] and abs(r[key]) < 1e3, (key, r)  # finite
        assert 0 < r['loss_infonce'] < 2 * 0.2 * 10  # InfoNCE of 14 targets, x 2 tau
    # reference schedules over 3 iterations: lr from 0.25 lr (warm-up of 1.5 iterations),
    # target momentum 0.99 at iteration 0
    assert rows[0]['lr'] == pytest.approx(0.25 * 1.5e-4)
    assert rows[0]['target_momentum'] == pytest.approx(0.99)
    assert rows[0]['sim_target'] == pytest.approx(0.75)
    assert rows[-1]['target_momentum'] > rows[0]['target_momentum']
    assert (tmp_path / 'w' / 'epoch_1.pth').is_file()


def test_crop_size_not_a_multiple_of_patch_plus_gap_is_one_line(
    tiles, tmp_path, load_script, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('PERA_MM_DEBUG', raising=False)
    with pytest.raises(SystemExit) as info:
        train(load_script, tmp_path / 'w', tiles, 'train_dataloader.dataset.pipeline.1.scale=90')
    assert info.value.code == PeraCliErrors.EXIT_CODES['data']
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith('train.py: ')]
    assert ours == [
        'train.py: data error: inputs: 90x90 images are not a multiple of patch_size + '
        'patch_gap = 16 + 4 = 20 px on each side'
    ], err[-3000:]
    assert 'Traceback' not in err


@pytest.mark.needs_shared
def test_four_band_smoke_config_trains_on_oscd_crops(s2_tiles, tmp_path, load_script, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train(load_script, tmp_path / 'w', s2_tiles, config=SMOKE_4BAND)
    rows = [r for r in read_scalars(tmp_path / 'w') if 'loss' in r]
    assert [r['iter'] for r in rows] == [1, 2, 3]  # 12 tiles of both formats, batch 4
    for r in rows:
        for key in ('loss', 'loss_infonce', 'loss_sim_pred', 'loss_sim_vis'):
            assert r[key] == r[key] and abs(r[key]) < 1e3, (key, r)
        assert 0 < r['loss_infonce'] < 2 * 0.2 * 10
    state = torch.load(tmp_path / 'w' / 'epoch_1.pth', weights_only=True)
    assert state['state_dict']['backbone.patch_embed.weight'].shape == (64, 4 * 16 * 16)


@pytest.mark.needs_shared
def test_band_count_mismatch_is_one_line_naming_the_file(
    s2_tiles, tmp_path, load_script, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('PERA_MM_DEBUG', raising=False)
    data = tmp_path / 'rgb_npy'
    data.mkdir()
    np.save(data / 'three_bands.npy', np.load(next(s2_tiles.glob('*.npy')))[..., :3])
    with pytest.raises(SystemExit) as info:
        train(
            load_script, tmp_path / 'w', data, 'train_dataloader.batch_size=1', config=SMOKE_4BAND
        )
    assert info.value.code != 0
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith('train.py: ')]
    assert len(ours) == 1 and 'three_bands.npy has 3 bands, expected num_bands=4' in ours[0], err
    assert 'Traceback' not in err
