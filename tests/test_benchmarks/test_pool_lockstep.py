# Copyright (c) pera-mm contributors. All rights reserved.
"""``benchmarks/pool_lockstep.py``: the pooled ratio of several lock-step runs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pera_mm.testing import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
import pool_lockstep as P  # noqa: E402

PROTOCOL = dict(mode='lockstep', build=dict(arch='small'), threads=2, steps=3, warmup=2)


def _write(path, reference, current, commit='a' * 40, **protocol):
    payload = dict(
        meta=dict(loadavg_start=[0.5, 0.4, 0.3]),
        commit=commit,
        protocol=dict(PROTOCOL, **protocol),
        summary=dict(reference=dict(step_times_s=reference), current=dict(step_times_s=current)),
    )
    path.write_text(json.dumps(payload))
    return str(path)


def test_pooled_ratio_is_the_ratio_of_the_means_over_every_step(tmp_path):
    a = _write(tmp_path / 'a.json', [3.0, 3.0, 3.0], [2.0, 2.0, 2.0])  # 1.5
    b = _write(tmp_path / 'b.json', [2.0, 2.2, 2.4], [2.0, 2.0, 2.0])  # 1.1
    res = P.pool(P.load_runs([a, b]), target=1.25, resamples=2000)
    assert [r['ratio'] for r in res['runs']] == pytest.approx([1.5, 1.1])
    assert res['pooled_ratio'] == pytest.approx((9.0 + 6.6) / 6 / 2.0)
    assert res['run_ratio_mean'] == pytest.approx(1.3)
    assert res['run_ratio_sd'] == pytest.approx(np.std([1.5, 1.1], ddof=1))
    assert res['runs_at_target'] == 1
    # resampling two runs: both a (1.5), both b (1.1) or one of each (1.3), at 1/4, 1/4, 1/2
    low, high = res['bootstrap']['ci95']
    assert low == pytest.approx(1.1) and high == pytest.approx(1.5)
    assert res['bootstrap_share_at_target'] == pytest.approx(0.75, abs=0.03)


def test_identical_runs_give_a_zero_width_interval(tmp_path):
    paths = [_write(tmp_path / f'{i}.json', [2.5, 2.5, 2.5], [2.0, 2.0, 2.0]) for i in range(3)]
    res = P.pool(P.load_runs(paths), target=1.25, resamples=100)
    assert res['pooled_ratio'] == pytest.approx(1.25)
    assert res['bootstrap']['ci95'] == pytest.approx([1.25, 1.25])
    assert res['runs_at_target'] == 3 and res['bootstrap_share_at_target'] == 1.0


@pytest.mark.parametrize(
    'second, message',
    [
        (dict(commit='b' * 40), 'reference commit bbbbbbbb'),
        (dict(steps=30), 'protocol steps is 30'),
        (dict(mode='rounds'), "protocol mode is 'rounds'"),
    ],
)
def test_runs_of_another_protocol_are_refused_by_file_in_one_line(tmp_path, second, message):
    a = _write(tmp_path / 'a.json', [3.0] * 3, [2.0] * 3)
    b = _write(tmp_path / 'b.json', [3.0] * 3, [2.0] * 3, **second)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'benchmarks' / 'pool_lockstep.py'), a, b],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and 'b.json' in err and message in err


def test_the_cli_prints_and_writes_the_pooled_ratio(tmp_path):
    a = _write(tmp_path / 'a.json', [3.0] * 3, [2.0] * 3)
    b = _write(tmp_path / 'b.json', [2.4] * 3, [2.0] * 3)
    out = tmp_path / 'pool.json'
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'benchmarks' / 'pool_lockstep.py'), a, b, '--out', out],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'pooled aaaaaaaa / current = 1.350' in proc.stdout
    assert json.loads(out.read_text())['pooled_ratio'] == pytest.approx(1.35)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"protocol": {}}')
    assert P.main([a, str(bad)]) == 2
