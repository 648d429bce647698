# Copyright (c) pera-mm contributors. All rights reserved.
"""Run a benchmark worker from another commit of this repository, in its own checkout.

A speed comparison against an older commit must time THAT commit's code with ITS
configs: the commit is checked out into a temporary directory, and its own
worker script runs there, with the checkout as working directory and first on
``PYTHONPATH``, so ``import pera_mm`` resolves to the checkout and not to the
editable install. Each run records the full commit hash and the
``pera_mm.__file__`` the worker imported; a worker that imported another copy
is an error, not a result.

Two ways to make the checkout (``method``):

- ``'clone'`` (default): ``git clone --shared --no-checkout`` into the temporary
  directory, then a detached checkout of the commit there. The source
  repository is only read; a killed benchmark leaves nothing in it.
- ``'worktree'``: ``git worktree add --detach``; cleanup runs
  ``git worktree remove --force`` and ``git worktree prune``. A process killed
  before cleanup leaves a registered worktree behind (``git worktree prune``
  removes it once the directory is gone).

No torch import here: the orchestrator stays light.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import _common as C

METHODS = ('clone', 'worktree')
DEFAULT_WORKER = 'benchmarks/train_step_worker.py'
#: what the wrapper prints before the worker runs
PERA_FILE_MARKER = 'PERA_MM_FILE '
# imports pera_mm as the worker will, reports where from, then runs the worker as __main__
_WRAPPER = (
    'import runpy, sys\n'
    'import pera_mm\n'
    f'print({PERA_FILE_MARKER!r} + pera_mm.__file__, flush=True)\n'
    'script = sys.argv[1]\n'
    'sys.argv = sys.argv[1:]\n'
    "runpy.run_path(script, run_name='__main__')\n"
)


class CommitCheckoutError(RuntimeError):
    """The commit could not be checked out or its worker did not run as asked."""


def _git(repo, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ['git', '-C', str(repo), *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise CommitCheckoutError(
            f'git {" ".join(args)} failed in {repo}: {last[-1] if last else proc.returncode}'
        )
    return proc


def resolve_commit(commit: str, repo=C.REPO) -> Optional[str]:
    """The full hash of ``commit`` in ``repo``, or None when the clone does not hold it."""
    if shutil.which('git') is None:
        return None
    proc = _git(repo, 'rev-parse', '--verify', '--quiet', f'{commit}^{{commit}}', check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


class CommitCheckout:
    """A temporary checkout of ``commit`` (a context manager).

    Args:
        commit (str): a commit of ``repo`` (any unambiguous prefix or ref).
        repo (str | Path): the repository. Defaults to this checkout.
        method (str): ``'clone'`` or ``'worktree'`` (see the module notes).
        parent (str | Path, optional): where the temporary directory goes.

    Attributes:
        path (Path): the checkout (set on entry).
        commit (str): the full hash (set on entry).
    """

    def __init__(self, commit: str, repo=C.REPO, method: str = 'clone', parent=None):
        if method not in METHODS:
            raise ValueError(f'method: expected one of {METHODS}, got {method!r}')
        self.requested, self.repo, self.method = commit, Path(repo), method
        self.parent = parent
        self.path: Optional[Path] = None
        self.commit: Optional[str] = None
        self._tmp: Optional[str] = None

    def __enter__(self) -> 'CommitCheckout':
        full = resolve_commit(self.requested, self.repo)
        if full is None:
            raise CommitCheckoutError(
                f'commit {self.requested} is not in the clone at {self.repo} '
                f'(a shallow clone? fetch it first)'
            )
        self.commit = full
        self._tmp = tempfile.mkdtemp(prefix=f'pera-{full[:8]}-', dir=self.parent)
        self.path = Path(self._tmp) / 'src'
        try:
            if self.method == 'worktree':
                _git(self.repo, 'worktree', 'add', '--detach', str(self.path), full)
            else:
                _git(
                    self.repo, 'clone', '--quiet', '--shared', '--no-checkout', '.', str(self.path)
                )
                _git(self.path, 'checkout', '--quiet', '--detach', full)
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def cleanup(self):
        """Remove the checkout (and, for a worktree, its registration)."""
        if self.method == 'worktree' and self.path is not None and self.path.exists():
            _git(self.repo, 'worktree', 'remove', '--force', str(self.path), check=False)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self.method == 'worktree':
            _git(self.repo, 'worktree', 'prune', check=False)
        self._tmp = None

    def run_worker(self, argv: Sequence[str], worker: str = DEFAULT_WORKER, **kw) -> dict:
        """Run the checkout's own ``worker`` with ``argv`` in the checkout (:func:`run_worker`)."""
        if self.path is None:
            raise CommitCheckoutError('run_worker needs an entered CommitCheckout')
        return run_worker(self.path, worker, argv, commit=self.commit, **kw)


def environment(tree: Path, base: Optional[dict] = None) -> dict:
    """A worker's environment: ``tree`` (and its benchmarks/) first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    paths = [str(tree), str(tree / 'benchmarks')]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def run_worker(
    tree,
    worker: str,
    argv: Sequence[str],
    commit: Optional[str] = None,
    timeout: Optional[float] = None,
    env: Optional[dict] = None,
) -> dict:
    """Run ``tree``'s own ``worker`` script with ``argv``, with ``tree`` as cwd and import root.

    Args:
        tree (str | Path): a source tree (a checkout, or this repository).
        worker (str): the script, relative to ``tree``.
        argv (Sequence[str]): its arguments.
        commit (str, optional): recorded as is (the checkout's full hash).
        timeout (float, optional): seconds before the worker is killed.
        env (dict, optional): base environment (default: this process's).

    Returns:
        dict: ``commit``, ``tree``, ``pera_mm_file``, ``worker``, ``returncode``,
        ``stdout``, ``stderr`` and ``result`` (the parsed ``BENCH_RESULT`` payload,
        or None).

    Raises:
        CommitCheckoutError: the worker is missing, or imported a ``pera_mm``
            from outside ``tree``.
    """
    tree = Path(tree)
    script = tree / worker
    if not script.is_file():
        raise CommitCheckoutError(f'{tree} has no {worker}')
    cmd: List[str] = [sys.executable, '-c', _WRAPPER, str(script), *argv]
    proc = subprocess.run(
        cmd,
        cwd=tree,
        env=environment(tree, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    pera_file = next(
        (
            line[len(PERA_FILE_MARKER) :].strip()
            for line in proc.stdout.splitlines()
            if line.startswith(PERA_FILE_MARKER)
        ),
        None,
    )
    if pera_file is None or not Path(pera_file).resolve().is_relative_to(tree.resolve()):
        raise CommitCheckoutError(
            f'the worker in {tree} imported pera_mm from {pera_file} instead of that tree'
        )
    return dict(
        commit=commit,
        tree=str(tree),
        pera_mm_file=pera_file,
        worker=str(script),
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        result=C.parse_result(proc.stdout),
    )


def run_at_commit(commit: str, argv: Sequence[str], repo=C.REPO, method='clone', **kwargs) -> dict:
    """Check ``commit`` out, run its worker once with ``argv``, clean up (see ``run_worker``)."""
    with CommitCheckout(commit, repo=repo, method=method) as co:
        return co.run_worker(argv, **kwargs)


def train_step_worker(checkout: CommitCheckout, specs: Sequence[dict]):
    """``(worker, argv)`` of the checkout's own train-step worker for ``specs``.

    Since the benchmark split, the worker is ``benchmarks/train_step_worker.py
    SPECS_JSON``; before it (e.g. 90204a9) it was ``benchmarks/train_step.py
    --worker SPECS_JSON``. Both print one ``BENCH_RESULT`` line.
    """
    payload = json.dumps(list(specs))
    if (checkout.path / 'benchmarks/train_step_worker.py').is_file():
        return 'benchmarks/train_step_worker.py', [payload]
    return 'benchmarks/train_step.py', ['--worker', payload]


def interleaved_comparison(commit: str, specs: Sequence[dict], repeats: int = 2, **kw) -> dict:
    """The train step of ``commit`` and of this tree, run alternately (old, new, new, old, ...).

    Each run is a fresh worker process of its own tree. Returns ``commit`` and, per
    side (``reference`` and ``current``), the list of ``run_worker`` records
    (stdout dropped, stderr cut to its tail), in run order.
    """
    out = dict(commit=None, order=[], reference=[], current=[])
    with CommitCheckout(commit) as co:
        out['commit'] = co.commit
        old_worker, old_argv = train_step_worker(co, specs)
        new_worker, new_argv = DEFAULT_WORKER, [json.dumps(list(specs))]
        for rep in range(repeats):
            sides = ('reference', 'current') if rep % 2 == 0 else ('current', 'reference')
            for side in sides:
                if side == 'reference':
                    run = run_worker(co.path, old_worker, old_argv, commit=co.commit, **kw)
                else:
                    run = run_worker(C.REPO, new_worker, new_argv, **kw)
                run.pop('stdout')
                run['stderr'] = run['stderr'][-2000:]
                out[side].append(run)
                out['order'].append(side)
    return out


class WorkerProcess:
    """A long-lived worker of ``tree`` (cwd and import root, as in :func:`run_worker`)
    that answers one ``BENCH_RESULT`` line per request line written to its stdin.

    Used as a context manager; :meth:`request` sends a line and returns the parsed
    answer. The worker's stderr goes to a temporary file, quoted on failure.
    """

    def __init__(self, tree, worker: str, argv: Sequence[str], commit: Optional[str] = None):
        self.tree, self.commit = Path(tree), commit
        script = self.tree / worker
        if not script.is_file():
            raise CommitCheckoutError(f'{self.tree} has no {worker}')
        self._stderr = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(
            [sys.executable, '-c', _WRAPPER, str(script), *argv],
            cwd=self.tree,
            env=environment(self.tree),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self.pera_mm_file = None

    def _fail(self, what):
        self.proc.kill()
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines() or ['no output']
        raise CommitCheckoutError(f'the worker in {self.tree} {what}: {lines[-1]}')

    def read_result(self) -> dict:
        """The next ``BENCH_RESULT`` payload (checks where ``pera_mm`` came from first)."""
        for line in self.proc.stdout:
            if line.startswith(PERA_FILE_MARKER):
                self.pera_mm_file = line[len(PERA_FILE_MARKER) :].strip()
                if not Path(self.pera_mm_file).resolve().is_relative_to(self.tree.resolve()):
                    self._fail(f'imported pera_mm from {self.pera_mm_file}')
            elif line.startswith(C.RESULT_MARKER):
                return json.loads(line[len(C.RESULT_MARKER) :])
        return self._fail(f'exited (code {self.proc.wait()})')

    def request(self, line: str) -> dict:
        """Send one request line and return the worker's answer."""
        try:
            self.proc.stdin.write(line + '\n')
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._fail('stopped reading requests')
        return self.read_result()

    def __enter__(self) -> 'WorkerProcess':
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr.close()
        return False
