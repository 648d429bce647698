# Copyright (c) pera-mm contributors. All rights reserved.
"""``train_step.py --against-commit``: the protocol, and old and new giving the same step.

The trajectory test runs the reference commit's own model code and configs (in a
temporary checkout) and this tree's for 3 steps from one set of weights and
batches, drop path 0: the losses must agree to 1e-5. It skips with a reason when
the commit is not in the clone.
"""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from pera_mm.testing import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
import _against_commit as A  # noqa: E402
import _commit_worktree as W  # noqa: E402
from step_protocol_worker import apply_overrides, set_attr  # noqa: E402

REFERENCE_COMMIT = '90204a9'  # the step-speed reference of issue 23
#: a test-size PerA (ViT-Tiny, 4 x 4 patches, 2 local crops of 2 x 2 patches)
TINY = dict(
    A.ISSUE_SHAPES, arch='tiny', img_size=64, local_size=32, num_local=2, prototypes=64, batch=2
)


def test_runs_interleave_by_rounds():
    order = A.run_order(3, ['switches_off', 'bf16'], variant_rounds=2)
    assert [side for _, side in order] == [
        'reference', 'current', 'switches_off', 'bf16',
        'bf16', 'switches_off', 'current', 'reference',
        'reference', 'current',
    ]  # fmt: skip
    assert [r for r, _ in order] == [0] * 4 + [1] * 4 + [2] * 2


def _run(mean, rss, delta, rnd=0, first=9.0):
    return dict(
        round=rnd,
        result=dict(
            mean_step_s=mean,
            first_step_s=first,
            own_cores=1.9,
            peak_rss_mb=rss,
            peak_rss_delta_mb=delta,
            losses_finite=True,
        ),
    )


def test_summary_is_the_ratio_of_means_over_all_rounds():
    runs = dict(
        reference=[_run(3.0, 1000, 400), _run(5.0, 1010, 410, rnd=1)],
        current=[_run(2.0, 1020, 380), _run(4.0, 1030, 390, rnd=1)],
        switches_off=[_run(2.5, 1020, 380)],  # round 0 only: against current's 2.0
    )
    s = A.summarise(runs)
    assert s['reference']['mean_step_s'] == 4.0 and s['current']['mean_step_s'] == 3.0
    assert s['ratio'] == pytest.approx(4.0 / 3.0)  # not the mean of the round ratios
    assert s['round_ratios'] == pytest.approx([1.5, 1.25])
    assert s['peak_rss_ratio'] == pytest.approx(1025 / 1005)
    assert s['peak_rss_delta_ratio'] == pytest.approx(385 / 405)
    assert s['switches_off_over_current'] == pytest.approx(1.25)


def test_variant_attributes_reach_every_target_and_must_exist():
    blocks = [SimpleNamespace(drop_path=0.3), SimpleNamespace(drop_path=0.3)]
    model = SimpleNamespace(ema_update='lerp', backbone=SimpleNamespace(blocks=blocks))
    set_attr(model, 'ema_update', 'mul_add')
    set_attr(model, 'backbone.blocks.*.drop_path', 0.0)
    assert model.ema_update == 'mul_add' and [b.drop_path for b in blocks] == [0.0, 0.0]
    with pytest.raises(SystemExit, match="'backbone.mask_token_insert' does not exist"):
        set_attr(model, 'backbone.mask_token_insert', 'gather')


def test_lockstep_alternates_the_sides_every_step():
    assert A.lockstep_order(0, ['reference', 'current', 'bf16']) == ['reference', 'current', 'bf16']
    assert A.lockstep_order(1, ['reference', 'current', 'bf16']) == ['bf16', 'current', 'reference']


def test_lockstep_summary_is_the_ratio_of_means_over_the_timed_steps():
    times = dict(reference=[9.0, 3.0, 5.0], current=[9.0, 2.0, 4.0], no_prune=[1.0, 2.5, 4.5])
    cpu = {k: [2 * t for t in v] for k, v in times.items()}
    finish = {
        k: dict(peak_rss_mb=rss, peak_rss_delta_mb=rss / 2, losses_finite=True)
        for k, rss in (('reference', 1000), ('current', 1020), ('no_prune', 1010))
    }
    s = A.summarise_lockstep(times, cpu, finish, warmup=1)
    assert s['reference']['mean_step_s'] == 4.0 and s['current']['mean_step_s'] == 3.0
    assert s['ratio'] == pytest.approx(4.0 / 3.0)  # warm-up step excluded, mean not median
    assert s['step_ratios']['min'] == pytest.approx(1.25) and s['step_ratios']['max'] == 1.5
    assert s['current']['own_cores'] == pytest.approx(2.0)
    assert s['peak_rss_ratio'] == pytest.approx(1.02)
    assert s['no_prune_over_current'] == pytest.approx(3.5 / 3.0)


def test_run_time_overrides_switch_and_undo():
    groups = [dict(fused=True, lr=1.0), dict(fused=True, lr=0.5)]
    blocks = [SimpleNamespace(subset_rows='index_select') for _ in range(2)]
    stepper = SimpleNamespace(
        model=SimpleNamespace(backbone=SimpleNamespace(blocks=blocks, prune_last_block=True)),
        optim_wrapper=SimpleNamespace(
            nonfinite_check='grad_norm', optimizer=SimpleNamespace(param_groups=groups)
        ),
    )
    undo = apply_overrides(stepper, A.VARIANTS['adamw_unfused'])
    assert [g['fused'] for g in groups] == [False, False]
    apply_overrides(stepper, undo)
    assert [g['fused'] for g in groups] == [True, True] and groups[1]['lr'] == 0.5
    variant = dict(
        model_attrs={'backbone.blocks.*.subset_rows': 'advanced', 'backbone.prune_last_block': 0},
        optim_wrapper=dict(nonfinite_check='per_grad'),
    )
    undo = apply_overrides(stepper, variant)
    assert [b.subset_rows for b in blocks] == ['advanced'] * 2
    assert stepper.optim_wrapper.nonfinite_check == 'per_grad'
    apply_overrides(stepper, undo)
    assert [b.subset_rows for b in blocks] == ['index_select'] * 2
    assert stepper.model.backbone.prune_last_block is True
    assert stepper.optim_wrapper.nonfinite_check == 'grad_norm'
    with pytest.raises(SystemExit, match="'cpu_bf16' is not a run-time attribute"):
        apply_overrides(stepper, dict(optim_wrapper=dict(cpu_bf16=True)))


def test_a_commit_missing_from_the_clone_is_one_line_from_the_cli():
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'benchmarks/train_step.py'), '--against-commit',
         '0123456789abcdef0123'],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[-1]] and 'is not in the clone' in lines[-1], proc.stderr


def test_three_steps_of_the_reference_commit_and_of_this_tree_give_the_same_losses():
    if W.resolve_commit(REFERENCE_COMMIT) is None:
        pytest.skip(
            f'commit {REFERENCE_COMMIT} (the step-speed reference) is not in this clone '
            f'(shallow clone?); fetch it to compare against it'
        )
    out = A.trajectory(REFERENCE_COMMIT, TINY, steps=3, timeout=600, variants=['switches_off'])
    ref, cur = out['reference']['result'], out['current']['result']
    off = out['switches_off']['result']  # every issue-23 switch at its earlier form
    assert out['reference']['pera_mm_file'].startswith(out['reference']['tree'])
    assert out['reference']['commit'].startswith(REFERENCE_COMMIT)
    assert ref['build_file'].endswith('benchmarks/train_step.py')  # the commit's own builder
    assert cur['build_file'] == str(REPO_ROOT / 'benchmarks/_methods.py')
    for r in (ref, cur):
        assert r['missing_keys'] == [] and r['unexpected_keys'] == []
        assert len(r['losses']) == 3
    assert ref['losses'][0]['loss'] != ref['losses'][2]['loss']  # the weights moved
    for step, (a, b) in enumerate(zip(ref['losses'], cur['losses'])):
        losses = [k for k in a if k.startswith('loss')]
        assert len(losses) >= 4 and set(losses) <= set(b)
        for key in losses:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-5), (step, key)
            assert off['losses'][step][key] == pytest.approx(a[key], rel=1e-5, abs=1e-5)


def _needs_reference():
    if W.resolve_commit(REFERENCE_COMMIT) is None:
        pytest.skip(f'commit {REFERENCE_COMMIT} is not in this clone (shallow clone?)')


def test_lockstep_runs_both_trees_in_live_workers_step_by_step():
    _needs_reference()
    out = A.lockstep_compare(REFERENCE_COMMIT, warmup=1, steps=2, threads=1, build=TINY)
    s = out['summary']
    assert out['commit'].startswith(REFERENCE_COMMIT)
    assert not out['pera_mm_file']['reference'].startswith(str(REPO_ROOT))
    assert out['pera_mm_file']['current'].startswith(str(REPO_ROOT))
    for side in ('reference', 'current'):
        assert len(s[side]['step_times_s']) == 2 and len(s[side]['warmup_times_s']) == 1
        assert s[side]['losses_finite'] and s[side]['peak_rss_mb'] > 0
    assert s['ratio'] == pytest.approx(
        sum(s['reference']['step_times_s']) / sum(s['current']['step_times_s'])
    )


def test_switch_ab_alternates_one_variant_on_one_model():
    out = A.switch_ab(['no_prune'], warmup=0, steps=4, threads=1, build=TINY)['no_prune']
    assert len(out['step_times_s']['default']) == len(out['step_times_s']['variant']) == 2
    assert out['variant_over_default'] == pytest.approx(
        sum(out['step_times_s']['variant']) / sum(out['step_times_s']['default'])
    )
    with pytest.raises(SystemExit, match='cannot be switched at run time'):
        A.switch_ab(['compile'], build=TINY)
