"""Three I-JEPA iterations of each smoke config through tools/train.py (RGB and 4-band,
the latter on .npy and GeoTIFF crops of real OSCD Sentinel-2 bands)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch

from pera_mm.testing import REPO_ROOT
from pera_mm.utils import generate_demo_dataset

CONFIGS = REPO_ROOT / 'configs' / 'ijepa'
OSCD = 'OSCD/Onera Satellite Change Detection dataset - Images'
BANDS = ('B02', 'B03', 'B04', 'B08')
TRAIN = REPO_ROOT / 'tools' / 'train.py'


def _train_tool():
    spec = importlib.util.spec_from_file_location('pera_train_tool', TRAIN)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _losses(work_dir):
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert logs, f'no scalars.json under {work_dir}'
    rows = [json.loads(line) for line in logs[-1].read_text().splitlines() if line.strip()]
    return [r for r in rows if 'loss' in r]


def _check_run(work_dir):
    rows = _losses(work_dir)
    assert [r['iter'] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r['loss']) and r['loss'] > 0 for r in rows)
    # the linear EMA momentum of I-JEPA: 0.996 + i * 0.004 / 3
    for r in rows:
        assert r['teacher_momentum'] == pytest.approx(0.996 + (r['iter'] - 1) * 0.004 / 3)
    ckpt = torch.load(work_dir / 'iter_3.pth', map_location='cpu', weights_only=True)
    assert int(ckpt['state_dict']['mask_sampler.calls']) == 3  # saved for an exact resume
    return rows


def test_rgb_smoke_config_in_process(tmp_path):
    data = tmp_path / 'rgb'
    generate_demo_dataset(data, num_images=8, size=72)
    work_dir = tmp_path / 'work'
    _train_tool().main(
        [
            str(CONFIGS / 'ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'),
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data}',
        ]
    )
    rows = _check_run(work_dir)
    # lr: iteration 0 already uses the first step after the (1-iteration) warm-up
    assert rows[0]['lr'] == pytest.approx(1e-3) and rows[-1]['lr'] == pytest.approx(1e-6)


def write_oscd_tiles(shared_path, root, size=64):
    """8 crops (uint16 DN, B02/B03/B04/B08) of the four OSCD acquisitions: one per scene
    as an (H, W, 4) .npy, one as a 4-band GeoTIFF."""
    root.mkdir()
    for city in ('bercy', 'paris'):
        for date in ('imgs_1', 'imgs_2'):
            folder = shared_path(f'{OSCD}/{city}/{date}')
            bands = []
            for band in BANDS:
                (path,) = sorted(folder.glob(f'*_{band}.tif'))
                with rasterio.open(path) as src:
                    bands.append(src.read(1))
            stack = np.stack(bands)  # (4, H, W)
            hwc = stack[:, 100 : 100 + size, 100 : 100 + size].transpose(1, 2, 0)
            np.save(root / f'{city}_{date}.npy', np.ascontiguousarray(hwc))
            crop = stack[:, 200 : 200 + size, 150 : 150 + size]
            profile = dict(driver='GTiff', width=size, height=size, count=4, dtype='uint16')
            with rasterio.open(root / f'{city}_{date}.tif', 'w', **profile) as dst:
                dst.write(crop)
    return root


@pytest.mark.needs_shared
def test_four_band_smoke_config_subprocess(tmp_path, shared_path):
    data = write_oscd_tiles(shared_path, tmp_path / 's2')
    work_dir = tmp_path / 'work'
    env = {k: v for k, v in os.environ.items() if k != 'LOCAL_RANK'}
    proc = subprocess.run(
        [
            sys.executable,
            str(TRAIN),
            str(CONFIGS / 'ijepa_vit-tiny-p14_1xb4-3iter_npy-4band-56px_cpu-smoke.py'),
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data}',
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_run(work_dir)


def test_band_count_mismatch_is_one_line_naming_the_file(tmp_path, capsys):
    data = tmp_path / 's2'
    data.mkdir()
    np.save(data / 'three_bands.npy', np.zeros((64, 64, 3), np.uint16))
    with pytest.raises(SystemExit) as exit_info:
        _train_tool().main(
            [
                str(CONFIGS / 'ijepa_vit-tiny-p14_1xb4-3iter_npy-4band-56px_cpu-smoke.py'),
                '--work-dir',
                str(tmp_path / 'work'),
                '--cfg-options',
                f'train_dataloader.dataset.data_root={data}',
                'train_dataloader.batch_size=1',
            ]
        )
    assert exit_info.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'three_bands.npy has 3 bands, expected num_bands=4' in lines[0]
