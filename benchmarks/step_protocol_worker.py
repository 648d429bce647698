# Copyright (c) pera-mm contributors. All rights reserved.
"""One tree's PerA training step under the measurement protocol of issue 23.

Run by ``train_step.py --against-commit`` (through ``_commit_worktree.run_worker``)
with the tree under test as working directory and first on ``PYTHONPATH``:
``python step_protocol_worker.py SPEC_JSON``. The model, its optimizer wrapper
and their configs are that tree's own (its ``benchmarks/_methods.build_method``,
or, before the benchmark split, ``benchmarks/train_step.build_method``); only this
timing loop is shared, so both sides are timed by the same code. It uses no
module of the tree besides ``pera_mm`` and that build function.

Three modes (``spec['mode']``):

- ``'batches'`` (this tree only): push ``count`` synthetic batches through this
  tree's PerA pipeline (different pixels, crops and masks each) and save them to
  ``spec['batches']``, and with ``spec['state']`` this tree's freshly built
  model's state dict, so that every run sees the same inputs and start;

- ``'time'``: ``warmup`` steps, then ``steps`` timed steps, every step on its
  own batch from ``spec['batches']`` (a ``torch.save``'d list, none reused); the
  MEAN step time; per-step process CPU time; the RSS high-water mark of the
  process and its rise over the steps; the first-step time (compile cost when
  the backbone compiles).
- ``'trajectory'``: load ``spec['state']`` (strict: zero missing or unexpected
  keys), optionally set every block's drop path to ``spec['drop_path']``, run
  ``steps`` steps on the batches and report the losses of each.

A step is what the runner does per iteration: ``model.train_step`` (data
preprocessor, losses, backward, clip, AdamW), then the teacher EMA and the DINO
centre update (``TeacherEMAHook``/``CenterUpdateHook``). With the collapse monitor
at interval 1 (both trees' default) every step is a monitored step.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULT_MARKER = 'BENCH_RESULT '


def _build_function():
    """The tree's own ``build_method`` (post-split ``_methods``, else ``train_step``)."""
    try:
        import _methods as source
    except ImportError:
        import train_step as source
    return source.build_method, source.__file__


def _vm_kib(field):
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    return 0


def _reset_hwm():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, nested dicts key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_attr(model, path, value):
    """Set ``model.<path>`` (dotted; every block for ``blocks.*``), which must exist."""
    *owners, name = path.split('.')
    targets = [model]
    for part in owners:
        if part == '*':
            targets = [m for t in targets for m in t]
        else:
            targets = [getattr(t, part) for t in targets]
    for target in targets:
        if not hasattr(target, name):
            raise SystemExit(f'model_attrs: {path!r} does not exist in this tree')
        setattr(target, name, value)


def make_batches(spec):
    """Mode ``'batches'``: this tree's pipeline on synthetic images, saved (see above)."""
    import random

    import _common as C
    import _methods as M
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS

    import pera_mm  # noqa: F401
    from pera_mm.testing import shrink_pipeline, synthetic_batch

    b = spec['build']
    DefaultScope.get_instance(f'protocol-batches-{os.getpid()}', scope_name='mmpretrain')
    random.seed(b['seed'])
    np.random.seed(b['seed'])
    torch.manual_seed(b['seed'])
    cfg = Config.fromfile(C.REPO / M.PERA_CFG)
    steps = shrink_pipeline(
        cfg.train_dataloader.dataset.pipeline,
        global_crop_size=b['img_size'],
        local_crop_size=b['local_size'],
        num_local_crops=b['num_local'],
        mask_ratios=b['mask_ratios'],
    )
    transforms = [TRANSFORMS.build(t) for t in steps]
    side = M.source_side(b['img_size'])
    batches = [
        synthetic_batch(transforms, b['batch'], side, seed=b['seed'] + 1 + i)
        for i in range(spec['count'])
    ]
    torch.save(batches, spec['batches'])
    out = dict(count=len(batches), source_side=side)
    if spec.get('state'):
        torch.manual_seed(b['seed'])
        np.random.seed(b['seed'])
        model = M.build_method(dict(b))[0]
        torch.save(model.state_dict(), spec['state'])
        out['state_keys'] = len(model.state_dict())
    return out


class Stepper:
    """The tree's PerA, its optimizer wrapper, and one runner iteration per :meth:`step`."""

    def __init__(self, spec):
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import DefaultScope

        import pera_mm  # noqa: F401  (registers the modules)

        DefaultScope.get_instance(f'protocol-{os.getpid()}', scope_name='mmpretrain')
        build, self.build_file = _build_function()
        torch.manual_seed(spec['build']['seed'])
        np.random.seed(spec['build']['seed'])
        built = build(dict(spec['build']))
        self.model, optim_cfg = built[0], built[2]
        for path, value in spec.get('model_attrs', {}).items():
            set_attr(self.model, path, value)
        optim_cfg = merge(dict(optim_cfg), spec.get('optim_wrapper', {}))
        self.model.train()
        self.optim_wrapper = build_optim_wrapper(self.model, optim_cfg)
        self.momentum = spec.get('momentum', 0.999)
        self.centres = [
            loss
            for loss in (getattr(self.model, n, None) for n in ('cls_loss', 'patch_loss'))
            if loss is not None and hasattr(loss, 'update_center')
        ]

    def step(self, batch):
        log_vars = self.model.train_step(batch, self.optim_wrapper)
        self.model.update_teacher(self.momentum)
        for loss in self.centres:
            loss.update_center()
        return {k: float(v) for k, v in log_vars.items()}


def run_time(spec, stepper, batches):
    warmup, steps = spec['warmup'], spec['steps']
    if warmup + steps > len(batches):
        raise SystemExit(f'{warmup + steps} steps need as many batches, got {len(batches)}')
    rss_before = _vm_kib('VmRSS')
    hwm_reset = _reset_hwm()
    warm, warm_cpu = [], []
    for batch in batches[:warmup]:
        t0, c0 = time.perf_counter(), time.process_time()
        stepper.step(batch)
        warm.append(time.perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
    times, cpu, losses = [], [], []
    load_start = os.getloadavg()
    for batch in batches[warmup : warmup + steps]:
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(stepper.step(batch))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    hwm = _vm_kib('VmHWM')
    return dict(
        warmup_times_s=warm,
        first_step_s=warm[0] if warm else None,
        step_times_s=times,
        step_cpu_s=cpu,
        mean_step_s=sum(times) / len(times),
        own_cores=sum(cpu) / sum(times),
        losses_last=losses[-1],
        losses_finite=all(np.isfinite(v) for d in losses for v in d.values()),
        loadavg_start=load_start,
        loadavg_end=os.getloadavg(),
        rss_before_mb=rss_before / 1024,
        peak_rss_mb=hwm / 1024,
        peak_rss_delta_mb=(hwm - rss_before) / 1024,
        peak_rss_source='VmHWM reset before step 1' if hwm_reset else 'VmHWM since start',
    )


def run_trajectory(spec, stepper, batches):
    state = torch.load(spec['state'], map_location='cpu', weights_only=False)
    result = stepper.model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if 'drop_path' in spec:
        for module in stepper.model.modules():
            if hasattr(module, 'drop_path') and isinstance(module.drop_path, float):
                module.drop_path = float(spec['drop_path'])
    losses = [stepper.step(batch) for batch in batches[: spec['steps']]]
    return dict(losses=losses, missing_keys=missing, unexpected_keys=unexpected)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit('usage: step_protocol_worker.py SPEC_JSON')
    spec = json.loads(argv[0])
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel('WARNING')
    if spec['mode'] == 'batches':
        out = dict(spec=spec, **make_batches(spec))
        sys.stdout.write(RESULT_MARKER + json.dumps(out) + '\n')
        return 0
    t0 = time.perf_counter()
    stepper = Stepper(spec)
    batches = torch.load(spec['batches'], map_location='cpu', weights_only=False)
    out = dict(
        spec=spec,
        build_s=time.perf_counter() - t0,
        build_file=stepper.build_file,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        optim_wrapper=type(stepper.optim_wrapper).__name__,
    )
    run = run_time if spec['mode'] == 'time' else run_trajectory
    out.update(run(spec, stepper, batches))
    sys.stdout.write(RESULT_MARKER + json.dumps(out) + '\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
