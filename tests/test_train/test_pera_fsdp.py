"""FSDP (FlexibleRunner + FSDPStrategy, the ViT-G config's settings) on 2 CPU
processes with gloo trains exactly like DDP: same teacher, student and centre
after the same iterations, with the chunked DINO loss and global-norm clipping."""

import pytest
import torch
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import run_dist_train
from pera_mm.utils import generate_demo_dataset

DEMO = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'
GIANT = REPO_ROOT / 'configs/pera/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px.py'


def train(tmp_path, name, data, fsdp, port):
    giant = Config.fromfile(GIANT)
    hooks = [h.to_dict() for h in Config.fromfile(DEMO).custom_hooks]
    extra = ''
    if fsdp:
        extra = f"runner_type = 'FlexibleRunner'\nstrategy = {giant.strategy.to_dict()!r}\n"
    cfg = tmp_path / f'{name}.py'
    cfg.write_text(f"""_base_ = [{str(DEMO)!r}]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={str(data)!r}))
train_cfg = dict(max_epochs=1)
model = dict(cls_loss=dict(chunk_size=1000))
optim_wrapper = dict(use_fsdp={fsdp}, clip_grad=dict(max_norm=0.5))
param_scheduler = [dict(type='WarmupCosineParamScheduler', param_name='lr', final_value=1e-6,
                        by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_hooks = {hooks!r}
randomness = dict(seed=3)
{extra}""")
    work = tmp_path / name
    proc = run_dist_train(cfg, work, port)
    return torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True), proc.stdout


@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_fsdp_matches_ddp(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(data, num_images=24, size=96, seed=1)
    ddp, _ = train(tmp_path, 'ddp', data, fsdp=False, port=29631)
    fsdp, _ = train(tmp_path, 'fsdp', data, fsdp=True, port=29633)
    a, b = ddp['state_dict'], fsdp['state_dict']
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)
    # training happened: the student moved away from its EMA teacher
    w = 'backbone.blocks.0.attn.qkv.weight'
    assert not torch.allclose(b[w], b['teacher.' + w], atol=1e-6)
    assert b['cls_loss.center'].abs().sum() > 0
    assert ddp['meta']['iter'] == fsdp['meta']['iter'] == 3  # 24 images / (2 ranks x 4)
