"""I-JEPA, LatentMIM and PerA with and without the spatial-affinity component through
tools/train.py.

Real Sentinel-2 pixels, SIMULATED scale: one pair per OSCD city, HR = the 10 m B2/B3/B4/B8
stack, MR = it area-downsampled x2 (``pera_mm.testing.oscd_pairs.build_oscd_pairs``). PerA's
views come from ``PairedPerAMultiCropViews`` (colour off on 4 bands).
"""

import importlib.util
import math

import pytest
import torch

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.oscd_pairs import build_oscd_pairs
from pera_mm.testing.tool_runs import read_scalars

CONFIGS = REPO_ROOT / 'configs' / 'spatial_affinity'
IJEPA_MR = 'ijepa_vit-tiny-p14_1xb2-10iter_oscd-pairs-56px_mr-only_cpu-smoke.py'
IJEPA_SA = 'ijepa-sa_vit-tiny-p14_1xb2-10iter_oscd-pairs-56px_cpu-smoke.py'
LMIM_MR = 'latent_mim_vit-tiny-p16_1xb2-10iter_oscd-pairs-80px_mr-only_cpu-smoke.py'
LMIM_SA = 'latent_mim-sa_vit-tiny-p16_1xb2-10iter_oscd-pairs-80px_cpu-smoke.py'
PERA_MR = 'pera_vit-tiny-p8_1xb2-10iter_oscd-pairs-32px_mr-only_cpu-smoke.py'
PERA_SA = 'pera-sa_vit-tiny-p8_1xb2-10iter_oscd-pairs-32px_cpu-smoke.py'
pytestmark = pytest.mark.needs_shared


@pytest.fixture(scope='module')
def pairs(shared_path, tmp_path_factory):
    out = tmp_path_factory.mktemp('oscd_pairs')
    build_oscd_pairs(shared_path('OSCD'), out, scale=2, fmt='npy')
    return out


def _train(config, pairs, work_dir, *options):
    spec = importlib.util.spec_from_file_location('pera_train_tool', REPO_ROOT / 'tools/train.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(
        [
            str(CONFIGS / config),
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            f'train_dataloader.dataset.dataset.data_root={pairs}',
            *options,
        ]
    )
    rows = [r for r in read_scalars(work_dir) if 'loss' in r]
    assert [r['iter'] for r in rows] == list(range(1, 11))
    assert all(math.isfinite(r['loss']) for r in rows)
    state = torch.load(work_dir / 'iter_10.pth', map_location='cpu', weights_only=True)
    return rows, state['state_dict']


def _mean(rows, key, part):
    values = [r[key] for r in rows]
    return sum(values[part]) / len(values[part])


def _sub(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def test_ijepa_with_and_without_the_component(pairs, tmp_path):
    rows, state = _train(IJEPA_MR, pairs, tmp_path / 'mr')
    assert _mean(rows, 'loss', slice(-3, None)) < _mean(rows, 'loss', slice(0, 3))
    assert not any(k.startswith('spatial_affinity.') for k in state)

    rows, state = _train(IJEPA_SA, pairs, tmp_path / 'sa')
    for r in rows:  # the total is the host term plus the weighted gram loss
        assert r['loss'] == pytest.approx(r['loss_ijepa'] + r['loss_spatial_affinity'], abs=2e-4)
        assert r['sa_weight'] == 1.0
    assert _mean(rows, 'loss', slice(-3, None)) < _mean(rows, 'loss', slice(0, 3))
    # the HR teacher's cosine momentum 0.9 -> 1.0 over the 10 iterations
    assert [round(r['sa_momentum'], 4) for r in rows[:2]] == [0.9, 0.9024]
    hr = _sub(state, 'spatial_affinity.hr_teacher.')
    student = _sub(state, 'backbone.')
    assert hr.keys() == student.keys() and all(torch.isfinite(v).all() for v in hr.values())
    assert not all(torch.equal(hr[k], student[k]) for k in hr)  # an EMA lags the student


def test_ijepa_snapshot_teacher_is_the_target_at_a_refresh(pairs, tmp_path):
    opts = ('model.spatial_affinity.mode=snapshot', 'model.spatial_affinity.refresh_interval=5')
    rows, state = _train(IJEPA_SA, pairs, tmp_path / 'snap', *opts)
    assert 'sa_momentum' not in rows[-1]
    # refreshed after iterations 5 and 10 (after the target's EMA): the final copy is exact
    hr, target = _sub(state, 'spatial_affinity.hr_teacher.'), _sub(state, 'target_encoder.')
    assert all(torch.equal(hr[k], target[k]) for k in target)


def test_latent_mim_with_and_without_the_component(pairs, tmp_path):
    rows, state = _train(LMIM_MR, pairs, tmp_path / 'mr')
    assert 'monitor_sa_gram' not in rows[0]

    # with the component: the gram term falls as the student's affinities meet the teacher's
    # (LatentMIM's own InfoNCE stays flat at this batch size within 10 iterations)
    rows, state = _train(LMIM_SA, pairs, tmp_path / 'sa', 'model.num_visible=6')
    gram = 'loss_spatial_affinity'
    assert _mean(rows, gram, slice(-3, None)) < 0.5 * _mean(rows, gram, slice(0, 3))
    for r in rows:
        parts = [v for k, v in r.items() if k.startswith('loss_')]
        assert r['loss'] == pytest.approx(sum(parts), abs=5e-4)
    hr = _sub(state, 'spatial_affinity.hr_teacher.')
    assert hr.keys() == _sub(state, 'target.').keys()


def test_latent_mim_snapshot_teacher_is_the_target_at_a_refresh(pairs, tmp_path):
    opts = ('model.spatial_affinity.mode=snapshot', 'model.spatial_affinity.refresh_interval=5')
    rows, state = _train(LMIM_SA, pairs, tmp_path / 'snap', *opts)
    hr, target = _sub(state, 'spatial_affinity.hr_teacher.'), _sub(state, 'target.')
    assert all(torch.equal(hr[k], target[k]) for k in target)


def test_hook_without_the_component_is_a_one_line_error(pairs, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('pera_train_tool', REPO_ROOT / 'tools/train.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as info:
        tool.main(
            [
                str(CONFIGS / IJEPA_MR),
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'train_dataloader.dataset.dataset.data_root={pairs}',
                'custom_hooks.1.type=SpatialAffinityHook',
            ]
        )
    assert info.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'the model IJEPA has no spatial_affinity' in lines[0]


def test_pera_with_and_without_the_component(pairs, tmp_path):
    host, state = _train(PERA_MR, pairs, tmp_path / 'mr')
    assert 'monitor_sa_gram' not in host[0]
    assert not any(k.startswith('spatial_affinity.') for k in state)
    assert _mean(host, 'loss', slice(-3, None)) < _mean(host, 'loss', slice(0, 3))

    rows, state = _train(PERA_SA, pairs, tmp_path / 'sa')
    for r in rows:  # the gram term is present, and the total is the sum of the terms
        assert r['sa_weight'] == 1.0 and r['monitor_sa_gram'] > 0
        parts = [v for k, v in r.items() if k.startswith('loss_')]
        assert r['loss'] == pytest.approx(sum(parts), abs=5e-4)
    assert _mean(rows, 'loss', slice(-3, None)) < _mean(rows, 'loss', slice(0, 3))
    # the same random stream as the host alone: step 1 is the host's loss plus the gram term
    assert rows[0]['loss'] == pytest.approx(
        host[0]['loss'] + rows[0]['loss_spatial_affinity'], abs=1e-4
    )
    assert [round(r['sa_momentum'], 4) for r in rows[:2]] == [0.9, 0.9024]
    hr, student = _sub(state, 'spatial_affinity.hr_teacher.'), _sub(state, 'backbone.')
    assert hr.keys() == student.keys() and all(torch.isfinite(v).all() for v in hr.values())
    assert not all(torch.equal(hr[k], student[k]) for k in hr)  # an EMA lags the student


def test_pera_snapshot_teacher_is_the_ema_teacher_at_a_refresh(pairs, tmp_path):
    opts = ('model.spatial_affinity.mode=snapshot', 'model.spatial_affinity.refresh_interval=5')
    rows, state = _train(PERA_SA, pairs, tmp_path / 'snap', *opts)
    assert 'sa_momentum' not in rows[-1] and all(r['monitor_sa_gram'] > 0 for r in rows)
    # refreshed after iterations 5 and 10 (after PerA's teacher EMA): the final copy is exact
    hr, teacher = _sub(state, 'spatial_affinity.hr_teacher.'), _sub(state, 'teacher.backbone.')
    assert hr.keys() == teacher.keys()
    assert all(torch.equal(hr[k], teacher[k]) for k in teacher)


def test_rgb_jitter_on_four_bands_is_a_one_line_error(pairs, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('pera_train_tool', REPO_ROOT / 'tools/train.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as info:
        tool.main(
            [
                str(CONFIGS / PERA_SA),
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'train_dataloader.dataset.dataset.data_root={pairs}',
                'train_dataloader.dataset.dataset.pipeline.1.student_color.jitter_prob=0.72',
            ]
        )
    assert info.value.code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert 'student_color.jitter_prob is 0.72 but the input has 4 bands' in lines[0]
