"""LatentMIM through tools/train.py: the CPU smoke config trains 3 iterations with
finite losses and the reference schedules; a crop size that is not a multiple of
patch + gap stops with one line."""

from pathlib import Path

import pytest

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import read_scalars
from pera_mm.utils import generate_demo_dataset
from pera_mm.utils.cli import PeraCliErrors

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'


@pytest.fixture(scope='module')
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp('lmim_tiles')
    generate_demo_dataset(root, num_images=12, size=96, seed=0)
    return root


def train(load_script, work_dir: Path, data_root: Path, *options):
    """``tools/train.py SMOKE --work-dir ... --cfg-options data_root=... *options``, in-process."""
    script = load_script(REPO_ROOT / 'tools/train.py')
    argv = [str(SMOKE), '--work-dir', str(work_dir), '--cfg-options']
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
