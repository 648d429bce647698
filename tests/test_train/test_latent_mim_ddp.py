# Copyright (c) pera-mm contributors. All rights reserved.
"""Two-process DDP (gloo, CPU) LatentMIM steps equal one process on the whole batch.

The single process averages the losses of the two halves (one per rank), since the
similarity regulariser is a square of the batch mean and DDP computes it per rank.

The 4-band smoke model on crops of real OSCD Sentinel-2 bands (B02, B03, B04, B08), with
injected draws (window offsets and patch noise); the EMA runs inside each forward, so
the target encoder is compared too.
"""

import textwrap

import numpy as np
import pytest
import rasterio
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import run_torchrun

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_npy-4band-80px_cpu-smoke.py'
OSCD = 'OSCD/Onera Satellite Change Detection dataset - Images'
BANDS = ('B02', 'B03', 'B04', 'B08')
STEPS = 2

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    sys.path.insert(0, {tests!r})
    from test_latent_mim_ddp import build, step

    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    data = torch.load({data!r}, weights_only=True)
    model, wrapper = build(data['init'])
    ddp = DistributedDataParallel(model)
    for x, draws in data['steps']:
        rows = slice(rank * x.shape[0] // world, (rank + 1) * x.shape[0] // world)
        step(ddp, model, wrapper, x[rows], {{k: v[rows] for k, v in draws.items()}})
    if rank == 0:
        torch.save(model.state_dict(), {out!r})
    dist.destroy_process_group()
    """
)


def oscd_stack(folder):
    """The (4, H, W) float DN stack B02/B03/B04/B08 of one OSCD acquisition."""
    bands = []
    for band in BANDS:
        (path,) = sorted(folder.glob(f'*_{band}.tif'))
        with rasterio.open(path) as src:
            bands.append(src.read(1).astype(np.float32))
    return np.stack(bands)


def build(init_state=None):
    """The 4-band smoke model and its optimizer wrapper (the config's groups)."""
    cfg = Config.fromfile(SMOKE)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        if init_state is None:
            model.init_weights()
        else:
            model.load_state_dict(init_state)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper.to_dict())
    model.momentum = 0.9  # a visible EMA
    return model, wrapper


def step(forward_model, model, wrapper, x, draws, chunks=1):
    """One step through ``forward(mode='loss')`` with injected draws (EMA in the forward).

    With ``chunks`` the batch is cut in that many equal parts whose losses are averaged:
    the similarity regulariser squares a batch mean, so a rank's loss is that of its own
    part, as in the reference under DDP. The EMA runs once, in the first forward.
    """
    total = 0
    for i in range(chunks):
        rows = slice(i * x.shape[0] // chunks, (i + 1) * x.shape[0] // chunks)
        model.draw = lambda batch_size, grid_hw, device: {k: v[rows] for k, v in draws.items()}
        model.update_ema = i == 0
        inputs = model.data_preprocessor(dict(inputs=x[rows]), True)['inputs']
        total = total + model.parse_losses(forward_model(inputs, None, 'loss'))[0] / chunks
    model.update_ema = True
    wrapper.update_params(total)


@pytest.mark.needs_shared
def test_two_processes_equal_one(tmp_path, shared_path):
    stack = oscd_stack(shared_path(f'{OSCD}/paris/imgs_1'))
    torch.manual_seed(0)
    model, wrapper = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    for s in range(STEPS):  # 4 real 80 px crops per step
        crops = [stack[:, 80 * i : 80 * i + 80, 80 * s : 80 * s + 80] for i in range(4)]
        x = torch.from_numpy(np.stack(crops))
        steps.append((x, model.draw(4, (4, 4), 'cpu')))
    data = tmp_path / 'data.pt'
    torch.save(dict(init=init, steps=steps), data)

    # one thread, as each worker: the same reduction order in the GEMMs, so the
    # comparison below sees the algorithm, not the thread count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for x, draws in steps:  # one process, the whole batch (each rank's half a chunk)
            step(model, model, wrapper, x, draws, chunks=2)
    finally:
        torch.set_num_threads(threads)
    expected = model.state_dict()

    script = tmp_path / 'worker.py'
    out = tmp_path / 'rank0.pt'
    script.write_text(
        WORKER.format(tests=str(REPO_ROOT / 'tests' / 'test_train'), data=str(data), out=str(out))
    )
    run_torchrun(script, port=29643)
    got = torch.load(out, weights_only=True)
    compared = 0
    for k, v in expected.items():
        if k.startswith(('backbone.', 'neck.', 'target.')):
            torch.testing.assert_close(got[k], v, rtol=0, atol=2e-6, msg=k)
            compared += 1
    assert compared == len([k for k in expected if not k.startswith('data_preprocessor')])
    w = 'blocks.0.attn.qkv.weight'
    assert not torch.equal(got['target.' + w], init['target.' + w])  # the EMA ran
    assert not torch.equal(got['backbone.' + w], init['backbone.' + w])  # so did AdamW
