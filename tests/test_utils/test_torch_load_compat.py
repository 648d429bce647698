"""MMEngine checkpoints must resume under torch.load(weights_only=True)."""

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from pera_mm.testing import REPO_ROOT
from pera_mm.utils import mmengine_safe_globals, setup_torch_load_compat
from pera_mm.utils.torch_load_compat import history_buffer_getattr

TOY_CONFIG = REPO_ROOT / 'tests' / 'data' / 'toy_runner_config.py'

# Subprocess: resume the toy run WITHOUT the allow-list. The config's custom import
# (pera_mm.testing.toy_runner) imports pera_mm, which installs it: drop it again.
RESUME_WITHOUT_COMPAT = """
import sys
import torch
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config.fromfile(sys.argv[1])
assert torch.serialization.get_safe_globals(), 'pera_mm did not install its allow-list'
torch.serialization.clear_safe_globals()
cfg.work_dir, cfg.default_scope = sys.argv[2], 'mmengine'
cfg.train_cfg.max_iters = 6
cfg.resume, cfg.load_from = True, sys.argv[3]
Runner.from_cfg(cfg).train()
"""


@pytest.fixture(scope='module', autouse=True)
def _restore_default_scope():
    """Runner.from_cfg leaves its 'mmengine' default scope current; later tests
    building through MMPretrain's registries must not inherit it."""
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


def _toy_cfg(work_dir, max_iters):
    cfg = Config.fromfile(str(TOY_CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.default_scope = 'mmengine'
    cfg.train_cfg.max_iters = max_iters
    # dataset meta with a nested dict -> a ConfigDict inside the checkpoint
    cfg.train_dataloader.dataset.metainfo = dict(classes=('toy',), extra=dict(source='test'))
    cfg.custom_hooks = [dict(type='EMAHook')]
    return cfg


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory):
    """A 4-iteration toy run: message hub scalars, numpy best score, param
    schedulers, EMA, ConfigDict dataset meta."""
    work_dir = tmp_path_factory.mktemp('toy_run')
    Runner.from_cfg(_toy_cfg(work_dir, 4)).train()
    ckpt = work_dir / 'iter_4.pth'
    assert ckpt.is_file()
    return ckpt


def test_allow_list_covers_a_real_mmengine_checkpoint(toy_checkpoint):
    # globals the checkpoint needs beyond torch's defaults (computed with the
    # user allow-list emptied, then restored)
    installed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(toy_checkpoint)))
    finally:
        torch.serialization.add_safe_globals(installed)
    # MMEngine's own types and the numpy pieces it pickles
    assert {
        'mmengine.logging.history_buffer.HistoryBuffer',
        'mmengine.config.config.ConfigDict',
        'builtins.getattr',
        'numpy.ndarray',
        'numpy.dtype',
    } <= needed
    registered = set()
    for entry in mmengine_safe_globals():
        if isinstance(entry, tuple):
            registered.add(entry[1])
        else:
            registered.add(f'{entry.__module__}.{entry.__qualname__}')
    assert needed <= registered


def test_setup_is_idempotent():
    assert setup_torch_load_compat() is True
    before = len(torch.serialization.get_safe_globals())
    assert setup_torch_load_compat() is True
    assert len(torch.serialization.get_safe_globals()) == before
    assert HistoryBuffer in torch.serialization.get_safe_globals()
    assert ConfigDict in torch.serialization.get_safe_globals()
    # the builtin getattr itself is never allow-listed
    assert getattr not in torch.serialization.get_safe_globals()


def test_resume_works_with_weights_only(toy_checkpoint, tmp_path):
    setup_torch_load_compat()
    ckpt = torch.load(toy_checkpoint, weights_only=True)
    hub = ckpt['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)
    assert len(hub['log_scalars']['train/loss'].data[0]) == 4
    assert isinstance(hub['runtime_info']['best_score'], np.float32)
    assert isinstance(ckpt['meta']['dataset_meta']['extra'], ConfigDict)
    assert ckpt['meta']['iter'] == 4

    cfg = _toy_cfg(tmp_path, 6)
    cfg.resume, cfg.load_from = True, str(toy_checkpoint)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 6
    # the loss history continued from the resumed buffer (4 + 2 entries)
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 6
    assert (tmp_path / 'iter_6.pth').is_file()


def test_resume_fails_without_the_fix(toy_checkpoint, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            '-c',
            RESUME_WITHOUT_COMPAT,
            str(TOY_CONFIG),
            str(tmp_path),
            str(toy_checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert 'Unsupported global' in proc.stderr
    assert 'HistoryBuffer' in proc.stderr or 'ConfigDict' in proc.stderr


class NotAllowListed:
    """Any class outside the allow-list."""

    def __init__(self):
        self.payload = 1


class SneakyGetattr:
    """Pickles as ``getattr(np.ndarray, 'tofile')``: attribute access beyond
    HistoryBuffer's statistics methods must stay blocked."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_other_classes_are_still_rejected(tmp_path):
    setup_torch_load_compat()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': NotAllowListed()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path, weights_only=True)
    # the default is still weights-only
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        torch.load(path)

    torch.save({'x': SneakyGetattr()}, tmp_path / 'getattr.pth')
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        torch.load(tmp_path / 'getattr.pth', weights_only=True)


def test_history_buffer_getattr_is_restricted():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        history_buffer_getattr(np.ndarray, 'mean')


def test_no_op_on_torch_without_safe_globals(monkeypatch):
    import pera_mm.utils.torch_load_compat as compat

    monkeypatch.setattr(compat, '_installed', False)
    monkeypatch.delattr(torch.serialization, 'add_safe_globals')
    assert setup_torch_load_compat() is False
