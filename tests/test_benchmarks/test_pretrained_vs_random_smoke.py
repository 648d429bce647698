"""Smoke test of benchmarks/pretrained_vs_random.py: a tiny setting end to end on the real tiles.

One seed, two iterations per run, one tile per class, a PerA checkpoint made in
the test. Checked: the JSON holds every task x protocol x arm with metrics in
[0, 100], the summaries are the statistics of the per-seed numbers, the frozen
backbone of the pretrained linear probe still equals the checkpoint's teacher
and the random arm's does not. No threshold on the numbers themselves.
"""

import json
import subprocess
import sys

import pytest

from pera_mm.testing import REPO_ROOT, TINY_ARCH, make_pera_checkpoint

SCRIPT = REPO_ROOT / 'benchmarks' / 'pretrained_vs_random.py'


@pytest.mark.needs_shared
def test_pretrained_vs_random_tiny(tmp_path, shared_path):
    aid = shared_path('AID_150px/AID')
    loveda = shared_path('LoveDA/Train/Rural')
    ckpt, _ = make_pera_checkpoint(tmp_path / 'pera.pth')
    out = tmp_path / 'pvr.json'
    args = [
        '--checkpoint', ckpt, '--arch', json.dumps(TINY_ARCH), '--img-size', 64,
        '--seeds', 0, '--cls-root', aid, '--cls-train', 1, '--cls-test', 1,
        '--cls-iters', 2, '--cls-batch', 8, '--seg-root', loveda, '--seg-scale', 128,
        '--seg-iters', 2, '--seg-batch', 2, '--work-dir', tmp_path / 'runs', '--out', out,
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    payload = json.loads(out.read_text())

    assert payload['setting']['cls']['test_images'] == 30
    assert payload['setting']['seg']['train_tiles'] == ['0', '2']
    for task, metric in (('cls', 'accuracy/top1'), ('seg', 'mIoU')):
        for protocol in ('linear', 'finetune'):
            entry = payload['results'][task][protocol]
            assert entry['metric'] == metric
            summary = entry['summary']
            for arm in ('pretrained', 'random'):
                (run,) = entry['runs'][arm]
                assert run['seed'] == 0
                assert 0.0 <= run['metric'] <= 100.0
                assert run['metric'] == run['metrics'][metric]
                assert summary[arm]['mean'] == pytest.approx(run['metric'])
                assert summary[arm]['n'] == 1
            pre, rnd = summary['pretrained']['mean'], summary['random']['mean']
            assert summary['difference']['mean'] == pytest.approx(pre - rnd)
            if rnd:
                assert summary['ratio'] == pytest.approx(pre / rnd)
            # the random backbone never holds the checkpoint's teacher
            assert entry['runs']['random'][0]['backbone_vs_teacher_max_abs'] > 1e-3
        # a frozen pretrained backbone still is the teacher after training
        assert payload['results'][task]['linear']['runs']['pretrained'][0][
            'backbone_vs_teacher_max_abs'
        ] == pytest.approx(0.0, abs=1e-6)
