# Copyright (c) pera-mm contributors. All rights reserved.
"""A benchmark worker from another commit runs that commit's code, in its own checkout."""

import json
import shutil
import subprocess
import sys

import pytest

from pera_mm.testing import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / 'benchmarks'))
import _commit_worktree as W  # noqa: E402

REFERENCE_COMMIT = '90204a9'  # the step-speed reference of issue 23

pytestmark = pytest.mark.skipif(shutil.which('git') is None, reason='git is not installed')

WORKER = """
import json, os, sys
import pera_mm
from _common import emit_result
emit_result(dict(argv=sys.argv[1:], cwd=os.getcwd(), version=pera_mm.VERSION,
                 pera_file=pera_mm.__file__))
"""
COMMON = """
import json, sys
def emit_result(payload):
    sys.stdout.write('BENCH_RESULT ' + json.dumps(payload) + '\\n')
"""


def git(repo, *args):
    cmd = ['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t', *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope='module')
def scratch_repo(tmp_path_factory):
    """A two-commit repository whose package says which commit it is."""
    repo = tmp_path_factory.mktemp('repo')
    git(repo, 'init', '--quiet')
    (repo / 'pera_mm').mkdir()
    (repo / 'benchmarks').mkdir()
    (repo / 'benchmarks/train_step_worker.py').write_text(WORKER)
    (repo / 'benchmarks/_common.py').write_text(COMMON)
    hashes = []
    for version in ('old', 'new'):
        (repo / 'pera_mm/__init__.py').write_text(f'VERSION = {version!r}\n')
        git(repo, 'add', '-A')
        git(repo, 'commit', '--quiet', '-m', version)
        hashes.append(git(repo, 'rev-parse', 'HEAD'))
    return repo, hashes


@pytest.mark.parametrize('method', W.METHODS)
def test_the_old_commit_runs_its_own_worker_in_its_checkout(scratch_repo, method):
    repo, (old, new) = scratch_repo
    with W.CommitCheckout(old[:7], repo=repo, method=method) as co:
        path = co.path
        run = co.run_worker(['spec', '{"a": 1}'])
        if method == 'worktree':
            assert str(path) in git(repo, 'worktree', 'list')
    assert run['returncode'] == 0, run['stderr']
    assert run['commit'] == old and run['commit'] != new
    assert run['result']['version'] == 'old'  # the old code, not the repository's HEAD
    assert run['result']['argv'] == ['spec', '{"a": 1}']
    assert run['result']['cwd'] == str(path)
    assert run['pera_mm_file'] == run['result']['pera_file'] == str(path / 'pera_mm/__init__.py')
    json.dumps({k: v for k, v in run.items() if k != 'result'})  # recordable as is
    assert not path.exists()  # cleaned up
    assert str(path) not in git(repo, 'worktree', 'list')
    assert (repo / 'pera_mm/__init__.py').read_text() == "VERSION = 'new'\n"  # untouched


def test_a_commit_missing_from_the_clone_is_one_clear_error(scratch_repo):
    repo, _ = scratch_repo
    assert W.resolve_commit('0123456789abcdef', repo) is None
    with pytest.raises(W.CommitCheckoutError, match='commit 0123456789abcdef is not in the clone'):
        with W.CommitCheckout('0123456789abcdef', repo=repo):
            pass


def test_a_worker_importing_another_pera_mm_is_rejected(scratch_repo, tmp_path):
    repo, (old, _) = scratch_repo
    with W.CommitCheckout(old, repo=repo) as co:
        (co.path / 'pera_mm/__init__.py').unlink()  # the checkout no longer has the package
        (co.path / 'pera_mm').rmdir()
        with pytest.raises(W.CommitCheckoutError, match='imported pera_mm from .* instead of'):
            co.run_worker([])


def test_the_reference_commit_checks_out_with_its_own_package():
    full = W.resolve_commit(REFERENCE_COMMIT)
    if full is None:
        pytest.skip(
            f'commit {REFERENCE_COMMIT} (the step-speed reference) is not in this clone '
            f'(shallow clone?); fetch it to compare against it'
        )
    with W.CommitCheckout(REFERENCE_COMMIT) as co:
        assert co.commit == full
        assert (co.path / 'pera_mm/__init__.py').is_file()
        worker, argv = W.train_step_worker(co, [dict(method='pera')])
        assert (co.path / worker).is_file() and argv[-1] == '[{"method": "pera"}]'
        run = co.run_worker(['--help'], worker='benchmarks/train_step.py', timeout=300)
    assert run['returncode'] == 0, run['stderr'][-2000:]
    assert 'usage' in run['stdout']
    assert run['pera_mm_file'].startswith(str(co.path))
    assert not co.path.exists()
