# Copyright (c) pera-mm contributors. All rights reserved.
"""How tests reach the real sample data: one decision, one marker, no way around them.

The decision (skip, or fail under ``PERA_MM_REQUIRE_SHARED=1``) lives in the
``shared_data`` / ``shared_path`` fixtures of ``tests/conftest.py``; the paths and the
switch in ``pera_mm/testing/paths.py``. The conftest runs here on probe test files
(pytester), and every test source is scanned for a path to the sample data that
does not go through the fixtures.
"""

import ast
import configparser
import re
from pathlib import Path

import pytest

from pera_mm.testing import (
    REPO_ROOT,
    REQUIRE_SHARED_ENV,
    SHARED_DATA_ENV,
    shared_data_required,
    shared_data_root,
)

TESTS = REPO_ROOT / 'tests'
SHARED_FIXTURES = ('shared_data', 'shared_path')
# Names that bypass the fixtures' decision when a test module imports them.
BYPASS_NAMES = {'shared_data_root', 'shared_data_required', 'SHARED_DATA_ENV', 'REQUIRE_SHARED_ENV'}

PROBE = """
import pytest


@pytest.mark.needs_shared
def test_folder(shared_data):
    assert shared_data.is_dir()


@pytest.mark.needs_shared
def test_file(shared_path):
    assert shared_path('parity/record.pt').read_text() == 'x'
"""


# ------------------------------------------------------------- paths and switch


def test_repo_root_is_this_checkout():
    assert REPO_ROOT == Path(__file__).resolve().parents[2]
    assert (REPO_ROOT / 'setup.py').is_file() and (REPO_ROOT / 'pera_mm').is_dir()


def test_shared_data_root_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    assert shared_data_root() == REPO_ROOT.parent / 'shared' / 'data'
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert shared_data_root() == tmp_path
    monkeypatch.setenv(SHARED_DATA_ENV, '')  # empty means unset
    assert shared_data_root() == REPO_ROOT.parent / 'shared' / 'data'


@pytest.mark.parametrize(
    'value, required',
    [
        (None, False),
        ('', False),
        ('0', False),
        ('no', False),
        ('False', False),
        ('1', True),
        ('true', True),
        (' YES ', True),
        ('on', True),
    ],
)
def test_switch_values(monkeypatch, value, required):
    if value is None:
        monkeypatch.delenv(REQUIRE_SHARED_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_SHARED_ENV, value)
    assert shared_data_required() is required


def test_mistyped_switch_is_an_error(monkeypatch):
    monkeypatch.setenv(REQUIRE_SHARED_ENV, 'maybe')
    with pytest.raises(ValueError, match=f"^{REQUIRE_SHARED_ENV}='maybe': expected 1 or 0"):
        shared_data_required()


# ------------------------------------------------------- the conftest, run on probes


@pytest.fixture
def probe(pytester, monkeypatch, tmp_path):
    """A pytester folder with our conftest and pytest.ini settings; sample data absent."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(REPO_ROOT / 'pytest.ini')
    ours = dict(ini['pytest'])
    ours.pop('testpaths')
    ours['addopts'] = ours['addopts'].replace('-p pytester', '')  # already loaded here
    pytester.makeini(
        '[pytest]\n'
        + ''.join(
            f'{key} =\n    ' + value.strip().replace('\n', '\n    ') + '\n'
            for key, value in ours.items()
        )
    )
    pytester.makeconftest((TESTS / 'conftest.py').read_text())
    monkeypatch.delenv(REQUIRE_SHARED_ENV, raising=False)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / 'nonexistent'))
    return pytester


def _data(root):
    (root / 'parity').mkdir(parents=True)
    (root / 'parity' / 'record.pt').write_text('x')
    return root


def test_present_data_runs_the_tests(probe, monkeypatch, tmp_path):
    monkeypatch.setenv(SHARED_DATA_ENV, str(_data(tmp_path / 'data')))
    probe.makepyfile(PROBE)
    for switch in ('0', '1'):
        monkeypatch.setenv(REQUIRE_SHARED_ENV, switch)
        probe.runpytest().assert_outcomes(passed=2)


def test_missing_data_skips_with_the_path(probe, tmp_path):
    probe.makepyfile(PROBE)
    result = probe.runpytest('-rs')
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f'*real sample data not found: {tmp_path / "nonexistent"}*'])
    assert 'MISSING; tests needing it skip' in result.stdout.str()


def test_missing_data_fails_under_the_switch(probe, monkeypatch, tmp_path):
    monkeypatch.setenv(REQUIRE_SHARED_ENV, '1')
    probe.makepyfile(PROBE)
    result = probe.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            f'*real sample data not found: {tmp_path / "nonexistent"}*'
            f'{REQUIRE_SHARED_ENV}=1 makes this a failure*'
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_missing_file_in_present_folder_fails_under_the_switch(probe, monkeypatch, tmp_path):
    root = tmp_path / 'data'
    root.mkdir()
    monkeypatch.setenv(SHARED_DATA_ENV, str(root))
    probe.makepyfile(PROBE)
    probe.runpytest().assert_outcomes(passed=1, skipped=1)
    monkeypatch.setenv(REQUIRE_SHARED_ENV, '1')
    result = probe.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # shared_path() called in the test body
    result.stdout.fnmatch_lines([f'real sample data not found: {root / "parity" / "record.pt"}*'])


def test_marker_and_fixture_must_go_together(probe, monkeypatch, tmp_path):
    monkeypatch.setenv(SHARED_DATA_ENV, str(_data(tmp_path / 'data')))
    probe.makepyfile("""
import pytest


@pytest.fixture
def record(shared_path):
    return shared_path('parity/record.pt')


def test_unmarked(record):
    assert record.is_file()


@pytest.mark.needs_shared
def test_marked_without_data():
    pass
""")
    result = probe.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            '*test_unmarked uses the fixture(s) shared_data, shared_path but is not marked '
            '@pytest.mark.needs_shared*',
            '*test_marked_without_data is marked @pytest.mark.needs_shared but reads no sample '
            'data through the shared_data / shared_path fixtures*',
        ]
    )


def test_unregistered_marker_is_rejected(probe):
    probe.makepyfile("""
import pytest


@pytest.mark.needs_shard
def test_typo():
    pass
""")
    result = probe.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'needs_shard' not found in `markers` configuration option*"])


def test_mistyped_switch_stops_the_run(probe, monkeypatch):
    monkeypatch.setenv(REQUIRE_SHARED_ENV, 'maybe')
    probe.makepyfile(PROBE)
    result = probe.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{REQUIRE_SHARED_ENV}='maybe': expected 1 or 0*"])


# ------------------------------------------------- no path around the fixtures


def _docstrings(tree):
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, nodes)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }


def _names_sample_data(text):
    return (
        text == 'shared'
        or re.search(r'(^|[/\\])shared[/\\]', text) is not None
        or SHARED_DATA_ENV in text
        or REQUIRE_SHARED_ENV in text
    )


def _is_pytest_skip(func):
    return (
        isinstance(func, ast.Attribute)
        and func.attr == 'skip'
        and isinstance(func.value, ast.Name)
        and func.value.id == 'pytest'
    )


def sample_data_bypasses(source, name):
    """Places in a test module that reach the sample data around the fixtures.

    Args:
        source (str): the module's source.
        name (str): its name in the messages.

    Returns:
        list[str]: one ``name:line: what`` entry per finding.
    """
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _names_sample_data(node.value)
        ):
            found.append(
                f'{name}:{node.lineno}: names the sample data ({node.value!r}) '
                'instead of using the shared_data / shared_path fixtures'
            )
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('pera_mm'):
            for alias in node.names:
                if alias.name in BYPASS_NAMES:
                    found.append(
                        f'{name}:{node.lineno}: imports {alias.name}; only '
                        'tests/conftest.py decides about the sample data'
                    )
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            if {a.arg for a in args} & set(SHARED_FIXTURES):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Call) and _is_pytest_skip(sub.func):
                        found.append(
                            f'{name}:{sub.lineno}: {node.name} skips on its own; '
                            "use shared_path('...') so the switch applies"
                        )
    return found


@pytest.mark.parametrize(
    'source',
    [
        "ROOT = Path(__file__).parents[2].parent / 'shared' / 'data'\n",
        "RECORD = REPO / '../shared/data/parity/x.pt'\n",
        "x = os.environ.get('PERA_MM_SHARED_DATA')\n",
        'from pera_mm.testing import shared_data_root\n',
        'def record(shared_data):\n'
        '    if not (shared_data / "x").exists():\n'
        '        pytest.skip("x missing")\n',
    ],
)
def test_scanner_finds_bypasses(source):
    assert len(sample_data_bypasses(source, 'probe.py')) == 1


def test_scanner_accepts_the_fixtures_and_docstrings():
    source = (
        '"""Reads ../shared/data/parity/x.pt."""\n'
        'from pera_mm.testing import REPO_ROOT\n'
        'def record(shared_path):\n'
        '    """The record in ../shared/data."""\n'
        "    return shared_path('parity/x.pt')\n"
        'def test_other():\n'
        "    pytest.skip('unrelated')\n"
    )
    assert sample_data_bypasses(source, 'probe.py') == []


def test_no_test_reaches_the_sample_data_around_the_fixtures():
    this = Path(__file__).resolve()
    sources = [
        p for p in sorted(TESTS.rglob('*.py')) if p.resolve() != this and p.name != 'conftest.py'
    ]
    assert len(sources) > 20  # the scan sees the suite
    found = [
        f
        for p in sources
        for f in sample_data_bypasses(p.read_text(), str(p.relative_to(REPO_ROOT)))
    ]
    assert not found, '\n'.join(found)
