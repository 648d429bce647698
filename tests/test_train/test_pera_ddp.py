"""Two-process DDP (gloo, CPU) PerA training through tools/dist_train.sh."""

import os
import subprocess

import torch
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT
from pera_mm.utils import generate_demo_dataset

DEMO = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'


def test_two_rank_training_keeps_center_and_teacher_identical(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(data, num_images=32, size=96, seed=1)
    hooks = [h.to_dict() for h in Config.fromfile(DEMO).custom_hooks]
    hooks.append(dict(type='DumpRankStateHook'))
    cfg = tmp_path / 'ddp_cfg.py'
    cfg.write_text(f"""_base_ = [{str(DEMO)!r}]
custom_imports = dict(imports=['pera_mm', 'pera_mm.testing.rank_state_hook'],
                      allow_failed_imports=False)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={str(data)!r}))
train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='WarmupCosineParamScheduler', param_name='lr', final_value=1e-6,
                        by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_hooks = {hooks!r}
""")
    work = tmp_path / 'work'
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]),
        PORT='29617',
        OMP_NUM_THREADS='1',
    )
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(cfg), '2', '--work-dir', str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(work / 'rank0.pt', weights_only=True)
    r1 = torch.load(work / 'rank1.pt', weights_only=True)
    # each rank saw different images, yet the all-reduced centre is the same
    assert not torch.allclose(r0['local_mean'], r1['local_mean'])
    assert torch.equal(r0['center'], r1['center'])
    assert r0['center'].abs().sum() > 0
    for k, v in r0['teacher'].items():
        assert torch.equal(v, r1['teacher'][k]), k
    assert (work / 'epoch_1.pth').exists()
