# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM with FSDP (FlexibleRunner + FSDPStrategy, the ViT-S FSDP config's settings)
on 2 CPU processes with gloo trains exactly like DDP: the same online encoder, decoder
and EMA target after the same iterations on real AID tiles. The rollback of a skipped
step's EMA works on FSDP shards too."""

import textwrap

import pytest
import torch

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.parity import key_bias_mask
from pera_mm.testing.tool_runs import aid_list_file, run_torchrun, train_smoke_distributed

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'
FSDP = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-small-p16_fsdp-8xb16-300e_rsrsd-280px.py'


def train(tmp_path, name, ann_file, fsdp, port):
    """Two processes of tools/dist_train.sh on the smoke model; the final checkpoint."""
    work = train_smoke_distributed(
        SMOKE, FSDP, tmp_path, name, ann_file, fsdp, port, checkpoint=dict(interval=1)
    )
    return torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True)


@pytest.mark.needs_shared
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_fsdp_matches_ddp(tmp_path, shared_path):
    ann = aid_list_file(shared_path('AID_150px'), tmp_path / 'aid.txt')
    ddp = train(tmp_path, 'ddp', ann, fsdp=False, port=29651)
    fsdp = train(tmp_path, 'fsdp', ann, fsdp=True, port=29653)
    a, b = ddp['state_dict'], fsdp['state_dict']
    assert set(a) == set(b), set(a) ^ set(b)
    assert any(k.startswith('target.') for k in a) and any(k.startswith('neck.') for k in a)
    for k in a:  # key biases hold AdamW-amplified rounding noise (zero gradient)
        keep = key_bias_mask(k, a[k])
        torch.testing.assert_close(b[k][keep], a[k][keep], atol=2e-5, rtol=1e-4, msg=k)
    assert ddp['meta']['iter'] == fsdp['meta']['iter'] == 3  # 24 tiles / (2 ranks x 4)
    # training happened: the online encoder moved away from its EMA target
    w = 'blocks.0.attn.qkv.weight'
    assert not torch.allclose(b['backbone.' + w], b['target.' + w], atol=1e-6)


ROLLBACK_WORKER = textwrap.dedent(
    """
    import torch
    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    import pera_mm
    from pera_mm.engine.fsdp_wrap_policy import latent_mim_fsdp_wrap_policy

    dist.init_process_group('gloo')
    cfg = Config.fromfile({smoke!r})
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    with torch.no_grad():  # a target away from the encoder, so the EMA shows
        for p in model.target.parameters():
            p.add_(0.01)
    fsdp = FSDP(model, auto_wrap_policy=latent_mim_fsdp_wrap_policy, use_orig_params=True,
                device_id=torch.device('cpu'))

    def target():
        with FSDP.summon_full_params(fsdp):
            return {{k: v.clone() for k, v in model.target.state_dict().items()}}

    start, result = target(), []
    for _ in range(2):
        model.snapshot_target()  # as LatentMIMScheduleHook before the iteration
        losses = fsdp(torch.rand(2, 3, 80, 80) * 255, None, mode='loss')
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        moved = target()
        model.rollback_target()  # as the hook after a skipped step
        restored = target()
        result.append([
            any(not torch.equal(moved[k], start[k]) for k in start),
            all(torch.equal(restored[k], start[k]) for k in start),
        ])
    torch.save(result, {out!r} + str(dist.get_rank()))
    dist.destroy_process_group()
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_rollback_restores_the_target_shards(tmp_path):
    script, out = tmp_path / 'worker.py', str(tmp_path / 'rank')
    script.write_text(ROLLBACK_WORKER.format(smoke=str(SMOKE), out=out))
    run_torchrun(script, port=29659)
    for rank in range(2):  # per iteration: the EMA moved the target, the rollback undid it
        assert torch.load(out + str(rank), weights_only=True) == [[True, True], [True, True]]
