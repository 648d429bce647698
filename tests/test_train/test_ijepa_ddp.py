"""Two-process DDP (gloo, CPU) I-JEPA steps equal one process on the whole batch."""

import textwrap

import torch
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import run_torchrun

SMOKE = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_npy-4band-56px_cpu-smoke.py'
STEPS = 2

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    sys.path.insert(0, {tests!r})
    from test_ijepa_ddp import build, step

    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    data = torch.load({data!r}, weights_only=True)
    model, wrapper = build(data['init'])
    ddp = DistributedDataParallel(model)
    for x, ctx, tgt in data['steps']:
        rows = slice(rank * x.shape[0] // world, (rank + 1) * x.shape[0] // world)
        step(ddp, model, wrapper, x[rows], ctx[rows], [t[rows] for t in tgt])
    if rank == 0:
        torch.save(model.state_dict(), {out!r})
    dist.destroy_process_group()
    """
)


def build(init_state=None):
    """The 4-band smoke model and its optimizer wrapper (the config's groups)."""
    cfg = Config.fromfile(SMOKE)
    model = MODELS.build(cfg.model)
    if init_state is None:
        model.init_weights()
    else:
        model.load_state_dict(init_state)
    ow = cfg.optim_wrapper.to_dict()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=ow.pop('constructor'), optim_wrapper_cfg=ow, paramwise_cfg=ow.pop('paramwise_cfg')
        )
    )
    return model, constructor(model)


def step(forward_model, model, wrapper, x, ctx, tgt):
    """One step through ``forward(mode='loss')`` with injected masks, then the EMA."""
    model.mask_sampler.forward = lambda batch_size: ([ctx], list(tgt))
    loss = forward_model(x, None, mode='loss')['loss']
    wrapper.update_params(loss)
    model.update_teacher(0.996)


def test_two_processes_equal_one(tmp_path):
    torch.manual_seed(0)
    model, wrapper = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    for _ in range(STEPS):
        x = torch.randn(4, 4, 56, 56)
        ctx, tgt = model.mask_sampler(4)
        steps.append((x, ctx[0], tgt))
    data = tmp_path / 'data.pt'
    torch.save(dict(init=init, steps=steps), data)

    for x, ctx, tgt in steps:  # one process, the whole batch
        step(model, model, wrapper, x, ctx, tgt)
    expected = model.state_dict()

    script = tmp_path / 'worker.py'
    out = tmp_path / 'rank0.pt'
    script.write_text(
        WORKER.format(tests=str(REPO_ROOT / 'tests' / 'test_train'), data=str(data), out=str(out))
    )
    run_torchrun(script, port=29641)
    got = torch.load(out, weights_only=True)
    for k, v in expected.items():
        if k.startswith(('backbone.', 'neck.', 'target_encoder.')):
            torch.testing.assert_close(got[k], v, rtol=0, atol=2e-6, msg=k)
    moved = init['target_encoder.norm.weight']
    assert not torch.equal(got['target_encoder.norm.weight'], moved)
