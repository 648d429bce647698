# Copyright (c) pera-mm contributors. All rights reserved.
"""Shared pytest fixtures and the rules for tests that need the real sample data.

Real remote-sensing samples and recorded parity steps live in ``<repo>/../shared/data``
(``PERA_MM_SHARED_DATA`` points elsewhere). Every test that reads them:

- requests the ``shared_data`` or ``shared_path`` fixture, the one place that
  decides what a missing folder or file means: a skip with the path in the reason,
  or a failure when ``PERA_MM_REQUIRE_SHARED=1`` (CI sets it, so CI cannot pass
  without these tests);
- carries the ``needs_shared`` marker (``pytest -m needs_shared`` runs them,
  ``-m "not needs_shared"`` leaves them out).

The collection hook below fails any test that uses the fixtures without the marker
or the marker without the fixtures, and ``tests/test_testing`` checks that no test
reaches ``../shared`` another way.
"""

import importlib.util
from pathlib import Path

import pytest

from pera_mm.testing import (
    REPO_ROOT,
    REQUIRE_SHARED_ENV,
    SHARED_DATA_ENV,
    shared_data_required,
    shared_data_root,
)

#: Fixtures through which tests reach the sample data.
SHARED_FIXTURES = ('shared_data', 'shared_path')
SHARED_MARKER = 'needs_shared'


def _missing(what: Path):
    """Skip, or fail under the switch, because ``what`` is not there."""
    reason = (
        f'real sample data not found: {what} (the folder ../shared/data next to the '
        f'repository, or ${SHARED_DATA_ENV})'
    )
    if shared_data_required():
        pytest.fail(f'{reason}; {REQUIRE_SHARED_ENV}=1 makes this a failure', pytrace=False)
    pytest.skip(reason)


def pytest_configure(config):
    here = Path(__file__).resolve().parents[1]
    if (here / 'pera_mm').is_dir() and REPO_ROOT != here:
        raise pytest.UsageError(
            f'pera_mm is imported from {REPO_ROOT}, not from the checkout under test {here} '
            f'(run "pip install -e ." in {here})'
        )
    try:
        shared_data_required()  # a mistyped switch stops the run before any test
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_report_header(config):
    root = shared_data_root()
    state = 'present' if root.is_dir() else 'MISSING'
    mode = 'fail' if shared_data_required() else 'skip'
    return f'pera-mm sample data: {root} ({state}; tests needing it {mode} when it is missing)'


def pytest_collection_modifyitems(config, items):
    """Fail tests whose use of the sample data and ``needs_shared`` marker disagree."""
    for item in items:
        uses = sorted(set(SHARED_FIXTURES) & set(getattr(item, 'fixturenames', ())))
        marked = item.get_closest_marker(SHARED_MARKER) is not None
        if uses and not marked:
            problem = (
                f'uses the fixture(s) {", ".join(uses)} but is not marked '
                f'@pytest.mark.{SHARED_MARKER}'
            )
        elif marked and not uses:
            problem = (
                f'is marked @pytest.mark.{SHARED_MARKER} but reads no sample data '
                f'through the {" / ".join(SHARED_FIXTURES)} fixtures'
            )
        else:
            continue
        item.stash[_MISMATCH] = f'{item.nodeid} {problem}'


_MISMATCH = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Fail the tests flagged by :func:`pytest_collection_modifyitems` before they run."""
    if _MISMATCH in item.stash:
        pytest.fail(item.stash[_MISMATCH], pytrace=False)


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """The sample-data folder (``<repo>/../shared/data`` or ``$PERA_MM_SHARED_DATA``).

    Skips the test when the folder is missing, or fails it under
    ``PERA_MM_REQUIRE_SHARED=1``. Tests using it must be marked ``needs_shared``.
    """
    root = shared_data_root()
    if not root.is_dir():
        _missing(root)
    return root


@pytest.fixture(scope='session')
def shared_path(shared_data):
    """A function ``get(relative) -> Path`` for one file or folder of the sample data.

    ``get`` skips (or fails, under the switch) when that entry is missing, exactly like
    :func:`shared_data` for the whole folder.
    """

    def get(relative) -> Path:
        path = shared_data / relative
        if not path.exists():
            _missing(path)
        return path

    return get


@pytest.fixture(scope='session')
def load_script():
    """Import a script by its path (``tools/*.py`` and ``benchmarks/*.py`` are no package)."""

    def load(path: Path):
        path = Path(path)
        spec = importlib.util.spec_from_file_location(
            f'pera_script_{path.parent.name}_{path.stem}', path
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Each test leaves MMEngine's current default scope as it found it.

    A Runner built in one test makes its scope (often ``mmengine``) current for
    the rest of the process; registry builds in later tests would then look in
    the wrong registry.
    """
    from mmengine.registry import DefaultScope

    before = list(DefaultScope._instance_dict)
    yield
    for name in [n for n in DefaultScope._instance_dict if n not in before]:
        DefaultScope._instance_dict.pop(name)
    for name in before:  # the order (the last one is current) as it was
        if name in DefaultScope._instance_dict:
            DefaultScope._instance_dict.move_to_end(name)
