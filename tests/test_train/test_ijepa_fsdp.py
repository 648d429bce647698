# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA with FSDP (FlexibleRunner + FSDPStrategy, the ViT-S FSDP config's settings)
on 2 CPU processes with gloo trains exactly like DDP: the same context encoder,
predictor and EMA target after the same iterations on real AID tiles."""

import pytest
import torch

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import aid_list_file, train_smoke_distributed

SMOKE = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'
FSDP = REPO_ROOT / 'configs/ijepa/ijepa_vit-small-p14_fsdp-8xb8-300e_rgb-224px.py'


def train(tmp_path, name, ann_file, fsdp, port):
    """Two processes of tools/dist_train.sh on the smoke model; the final checkpoint."""
    work = train_smoke_distributed(SMOKE, FSDP, tmp_path, name, ann_file, fsdp, port)
    return torch.load(work / 'iter_3.pth', map_location='cpu', weights_only=True)


@pytest.mark.needs_shared
@pytest.mark.skipif(not torch.distributed.is_available(), reason='torch.distributed missing')
def test_fsdp_matches_ddp(tmp_path, shared_path):
    ann = aid_list_file(shared_path('AID_150px'), tmp_path / 'aid.txt')
    ddp = train(tmp_path, 'ddp', ann, fsdp=False, port=29655)
    fsdp = train(tmp_path, 'fsdp', ann, fsdp=True, port=29657)
    a, b = ddp['state_dict'], fsdp['state_dict']
    assert set(a) == set(b), set(a) ^ set(b)
    assert any(k.startswith('target_encoder.') for k in a) and any(k.startswith('neck.') for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)
    assert ddp['meta']['iter'] == fsdp['meta']['iter'] == 3
    # training happened: the context encoder moved away from its EMA target
    w = 'blocks.0.attn.qkv.weight'
    assert not torch.allclose(b['backbone.' + w], b['target_encoder.' + w], atol=1e-6)
