"""The real LEVIR-CD and DSIFN-CD sample pairs through tools/train.py and tools/test.py.

The cpu-smoke configs (TINY PerA ViT from a PerA checkpoint made here, the BIT head, 64 px
crops, 3 iterations) train, then tools/test.py reports the change-class keys; for LEVIR-CD
(sliding-window test) they equal an in-process evaluation of the same checkpoint.
"""

import math
import re
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import data_root_options, run_tool

CONFIGS = REPO_ROOT / 'configs' / 'change_detection'
SMOKE = {
    'LEVIR-CD': CONFIGS / 'bit_pera-vit-tiny-p16_1xb2-3iter_levir-cd-64x64_cpu-smoke.py',
    'DSIFN-CD': CONFIGS / 'bit_pera-vit-tiny-p16_1xb2-3iter_dsifn-cd-64x64_cpu-smoke.py',
}
KEYS = ('changed/precision', 'changed/recall', 'changed/F1', 'changed/IoU')


#: pairs in each sample list (list/demo.txt), all evaluated
NUM_EVAL = {'LEVIR-CD': 7, 'DSIFN-CD': 10}


def _options(data_root, checkpoint):
    # no validation while training: tools/test.py evaluates
    return [*data_root_options(data_root, checkpoint), 'train_cfg.val_interval=1000']


def _run(args, cwd):
    # one OpenMP thread: on a shared 2-core machine, 2 threads per process made the small
    # BIT-head matmuls ~40x slower (18 s instead of 0.4 s per 256 px image, measured)
    return run_tool(args, cwd, OMP_NUM_THREADS='1')


def _test_metrics(work_dir):
    log = sorted(work_dir.glob('*/*.log'))[-1].read_text()
    line = [ln for ln in log.splitlines() if 'Iter(test)' in ln and 'changed/F1' in ln][-1]
    return {k: float(v) for k, v in re.findall(r'(\S+): (-?[\d.]+|nan)', line)}


@pytest.fixture(scope='module')
def pera_checkpoint(tmp_path_factory):
    path, _ = make_pera_checkpoint(tmp_path_factory.mktemp('ckpt') / 'pera_tiny_64px.pth')
    return path


def _train_and_test(dataset, data_root, checkpoint, tmp):
    options = _options(data_root, checkpoint)
    n = NUM_EVAL[dataset]
    train_dir = tmp / 'train'
    _run(
        [
            sys.executable,
            str(REPO_ROOT / 'tools' / 'train.py'),
            str(SMOKE[dataset]),
            '--work-dir',
            str(train_dir),
            '--cfg-options',
            *options,
        ],
        cwd=tmp,
    )
    log = sorted(train_dir.glob('*/*.log'))[-1].read_text()
    assert 'Iter(train) [3/3]' in log
    assert f'Iter(test) [{n}/{n}]' not in log  # no evaluation in training
    assert 'PerAViT: loaded 54 ViT tensors' in log  # the PerA teacher, nothing missing
    weights = train_dir / 'iter_3.pth'
    assert weights.is_file()
    test_dir = tmp / 'test'
    _run(
        [
            sys.executable,
            str(REPO_ROOT / 'tools' / 'test.py'),
            str(SMOKE[dataset]),
            str(weights),
            '--work-dir',
            str(test_dir),
            '--cfg-options',
            *options,
        ],
        cwd=tmp,
    )
    metrics = _test_metrics(test_dir)
    test_log = sorted(test_dir.glob('*/*.log'))[-1].read_text()
    assert f'Iter(test) [{n}/{n}]' in test_log
    for key in KEYS:
        assert key in metrics, (key, metrics)
        assert math.isnan(metrics[key]) or 0.0 <= metrics[key] <= 100.0, (key, metrics[key])
    return options, weights, metrics


@pytest.mark.needs_shared
def test_levir_cd_train_then_test_equals_in_process(shared_path, pera_checkpoint, tmp_path):
    data_root = shared_path('LEVIR-CD')
    options, weights, metrics = _train_and_test('LEVIR-CD', data_root, pera_checkpoint, tmp_path)
    assert not math.isnan(metrics['changed/F1'])  # the list has changed pixels
    cfg = Config.fromfile(str(SMOKE['LEVIR-CD']))
    cfg.merge_from_dict(dict(o.split('=', 1) for o in options))
    cfg.work_dir = str(tmp_path / 'in_process')
    cfg.load_from = str(weights)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ours = Runner.from_cfg(cfg).test()
    finally:
        torch.set_num_threads(threads)
    for key in (*KEYS, 'aAcc', 'mIoU'):
        assert abs(ours[key] - metrics[key]) < 1e-4, (key, ours[key], metrics[key])


@pytest.mark.needs_shared
def test_dsifn_cd_train_then_test(shared_path, pera_checkpoint, tmp_path):
    _, _, metrics = _train_and_test('DSIFN-CD', shared_path('DSIFN-CD'), pera_checkpoint, tmp_path)
    assert 0.0 <= metrics['aAcc'] <= 100.0
