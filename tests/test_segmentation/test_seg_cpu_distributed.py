# Copyright (c) pera-mm contributors. All rights reserved.
"""SyncBN configs on the CPU gloo path: BN instead, with a log line; 2 processes."""

import copy
import os
import subprocess
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.config_walk import iter_config_dicts
from pera_mm.utils.cpu_dist import convert_sync_bn_to_bn

SMOKE = REPO_ROOT / (
    'configs/segmentation/upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py'
)
LOG_LINE = 'CPU distributed run (gloo): SyncBN is not supported on CPU tensors, using BN'


def _norm_types(node):
    """The ``norm_cfg`` type of every module in the config ``node``, depth first."""
    norms = (d.get('norm_cfg') for d in iter_config_dicts(node))
    return [n['type'] for n in norms if isinstance(n, dict)]


def test_convert_sync_bn_to_bn_rewrites_every_norm(capsys):
    cfg = Config.fromfile(str(SMOKE), import_custom_modules=False)
    cfg.tta_model.module = copy.deepcopy(cfg.model)
    cfg.sync_bn = 'torch'
    before = _norm_types(cfg.model)
    assert before and set(before) == {'SyncBN'}  # backbone, decode and auxiliary heads
    found = convert_sync_bn_to_bn(cfg)
    assert set(_norm_types(cfg.model)) == {'BN'}
    assert set(_norm_types(cfg.tta_model)) == {'BN'}
    assert cfg.sync_bn is None
    assert 'model.backbone.norm_cfg' in found and "sync_bn='torch'" in found
    assert len(found) == 2 * len(before) + 1
    assert convert_sync_bn_to_bn(cfg) == []  # nothing left, nothing logged


@pytest.mark.needs_shared
def test_dist_train_sh_two_cpu_processes_with_syncbn_config(tmp_path, shared_path):
    src = shared_path('ISPRS/Potsdam_mmseg')
    root = tmp_path / 'data'
    for kind in ('img_dir', 'ann_dir'):
        dst = root / kind / 'train'
        dst.mkdir(parents=True)
        for f in (src / kind).glob('*.png'):
            (dst / f.name).symlink_to(f)
    ckpt, _ = make_pera_checkpoint(tmp_path / 'pera.pth')
    work = tmp_path / 'work'
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]),
        PORT=str(29700 + os.getpid() % 200),
        OMP_NUM_THREADS='1',
    )
    env.pop('LOCAL_RANK', None)
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(SMOKE), '2']
        + ['--work-dir', str(work), '--no-validate', '--cfg-options']
        + [
            f'model.backbone.init_cfg.checkpoint={ckpt}',
            f'train_dataloader.dataset.data_root={root}',
            'train_cfg.max_iters=2',
            'default_hooks.checkpoint.interval=2',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert LOG_LINE in proc.stdout + proc.stderr  # MMLogger prints rank 0's line
    log = next(Path(work).glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    dumped = Config.fromfile(str(work / SMOKE.name), import_custom_modules=False)
    assert set(_norm_types(dumped.model)) == {'BN'}
    state = torch.load(work / 'iter_2.pth', weights_only=True)['state_dict']
    bn = [k for k in state if k.endswith('running_mean')]
    assert bn and all(torch.isfinite(state[k]).all() for k in bn)
