# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/train.py and tools/test.py: our errors are one line and a named exit code."""

import os
import subprocess
import sys

import pytest

from pera_mm.testing import REPO_ROOT
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.utils.errors import (
    PeraConfigError,
    PeraDataError,
    PeraFileNotFoundError,
    PeraTrainingStopped,
)

REPO = REPO_ROOT
TOOLS = REPO / 'tools'
DEMO = REPO / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'
CODES = PeraCliErrors.EXIT_CODES


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PERA_MM_DEBUG', None)
    env.update(extra)
    return env


def _ours(stderr):
    """The stderr lines written by the tools' error report."""
    return [
        line
        for line in stderr.splitlines()
        if line.split('] ', 1)[-1].startswith(('train.py: ', 'test.py: '))
    ]


def _train(tmp_path, *args, **env):
    return subprocess.run(
        [
            sys.executable,
            str(TOOLS / 'train.py'),
            str(DEMO),
            '--work-dir',
            str(tmp_path / 'w'),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp_path / "missing"}',
            *args,
        ],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(tmp_path),
    )


def test_missing_data_folder_is_one_line_and_debug_shows_traceback(tmp_path):
    proc = _train(tmp_path)
    assert proc.returncode == CODES['file_not_found'], proc.stderr[-2000:]
    assert _ours(proc.stderr) == [
        f"train.py: file not found: data_root '{tmp_path / 'missing'}' does not exist or "
        'is not a directory'
    ]
    assert 'Traceback' not in proc.stderr
    # nothing was trained, so no checkpoint was written
    assert not list((tmp_path / 'w').rglob('*.pth'))

    debug = _train(tmp_path, '--debug')
    assert debug.returncode == 1
    assert 'Traceback (most recent call last)' in debug.stderr
    assert 'PeraFileNotFoundError: data_root' in debug.stderr
    assert not _ours(debug.stderr)


def test_unreadable_folder_under_torchrun_is_one_line_per_rank(tmp_path):
    bad = tmp_path / 'bad'
    bad.mkdir()
    for i in range(4):
        (bad / f'tile_{i}.png').write_bytes(b'not an image')
    proc = subprocess.run(
        [
            'bash',
            str(TOOLS / 'dist_train.sh'),
            str(DEMO),
            '2',
            '--work-dir',
            str(tmp_path / 'w'),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={bad}',
            'train_dataloader.num_workers=1',
            'train_dataloader.batch_size=2',
        ],
        env=_env(PORT='29641'),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0  # torchrun itself exits with 1 whatever the ranks' codes
    lines = _ours(proc.stderr)
    # the first rank to fail always reports; the other may be stopped by torchrun first
    assert 1 <= len(lines) <= 2
    assert len({line.split(']')[0] for line in lines}) == len(lines)
    for line in lines:
        assert line.startswith(('[rank 0] ', '[rank 1] '))
        assert 'train.py: data error: UnlabeledImageDataset: no readable image in folder' in line
        assert 'all 4 files tried, all unreadable (first reasons: tile_' in line
        assert 'DataLoader worker' not in line
    # the ranks print no traceback (torchrun's agent prints its own, about itself)
    assert 'train.py", line' not in proc.stderr and 'PeraDataError' not in proc.stderr
    assert f'exitcode: {CODES["data"]}' in proc.stderr  # the rank's named code, as torchrun saw it


# ------------------------------------------------------------------ in-process
def _raiser(err):
    def main(argv):
        raise err

    return main


@pytest.mark.parametrize(
    'err, kind',
    [
        (PeraConfigError('bad field'), 'config'),
        (PeraDataError('bad tile'), 'data'),
        (PeraFileNotFoundError('no file'), 'file_not_found'),
        (PeraTrainingStopped('3 consecutive steps'), 'training_stopped'),
    ],
)
def test_each_kind_has_its_exit_code(err, kind, capsys, monkeypatch):
    monkeypatch.delenv('PERA_MM_DEBUG', raising=False)
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    with pytest.raises(SystemExit) as info:
        PeraCliErrors.run(_raiser(err), [], tool='train.py')
    assert info.value.code == CODES[kind]
    assert len(set(CODES.values())) == len(CODES) and 1 not in CODES.values()
    err_text = capsys.readouterr().err
    assert err_text.count('\n') == 1 and err_text.startswith('train.py: ')
    assert err_text.strip().endswith(str(err))


def test_library_errors_and_debug_keep_the_traceback(monkeypatch):
    monkeypatch.delenv('PERA_MM_DEBUG', raising=False)
    with pytest.raises(ZeroDivisionError):  # not ours: propagates untouched
        PeraCliErrors.run(_raiser(ZeroDivisionError('x')), [])
    with pytest.raises(PeraConfigError):
        PeraCliErrors.run(_raiser(PeraConfigError('x')), ['--debug'])
    monkeypatch.setenv('PERA_MM_DEBUG', '1')
    with pytest.raises(PeraConfigError):
        PeraCliErrors.run(_raiser(PeraConfigError('x')), [])


def test_rank_prefix_under_torchrun(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('RANK', '3')
    assert (
        PeraCliErrors.line(PeraDataError('bad'), 'test.py') == '[rank 3] test.py: data error: bad'
    )
    monkeypatch.setenv('WORLD_SIZE', '1')
    assert PeraCliErrors.line(PeraDataError('bad'), 'test.py') == 'test.py: data error: bad'


def test_config_file_errors_are_config_errors(tmp_path, capsys, load_script, monkeypatch):
    monkeypatch.delenv('PERA_MM_DEBUG', raising=False)
    train = load_script(TOOLS / 'train.py')
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['does_not_exist.py']\n")
    with pytest.raises(SystemExit) as info:
        train.main([str(broken)])
    assert info.value.code == CODES['config']
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith(f'train.py: config error: config {broken}: ')
    assert 'does_not_exist.py' in err
    # an unknown type name in the config is the config's error too
    unknown = tmp_path / 'unknown.py'
    unknown.write_text(f"_base_ = [{str(DEMO)!r}]\nmodel = dict(type='NoSuchAlgorithm')\n")
    with pytest.raises(SystemExit) as info:
        train.main([str(unknown), '--work-dir', str(tmp_path / 'w')])
    assert info.value.code == CODES['config']
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('train.py: config error: ') and 'NoSuchAlgorithm' in err
