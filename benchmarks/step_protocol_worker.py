# Copyright (c) pera-mm contributors. All rights reserved.
"""One tree's PerA training step under the measurement protocol of issue 23.

Run by ``train_step.py --against-commit`` (through ``_commit_worktree.run_worker``)
with the tree under test as working directory and first on ``PYTHONPATH``:
``python step_protocol_worker.py SPEC_JSON``. The model, its optimizer wrapper
and their configs are that tree's own (its ``benchmarks/_methods.build_method``,
or, before the benchmark split, ``benchmarks/train_step.build_method``); only this
timing loop is shared, so both sides are timed by the same code. It uses no
module of the tree besides ``pera_mm`` and that build function.

Five modes (``spec['mode']``):

- ``'batches'`` (this tree only): push ``count`` synthetic batches through this
  tree's PerA pipeline (different pixels, crops and masks each) and save them to
  ``spec['batches']``, and with ``spec['state']`` this tree's freshly built
  model's state dict, so that every run sees the same inputs and start;

- ``'time'``: ``warmup`` steps, then ``steps`` timed steps, every step on its
  own batch from ``spec['batches']`` (a ``torch.save``'d list, none reused); the
  MEAN step time; per-step process CPU time; the RSS high-water mark of the
  process and its rise over the steps; the first-step time (compile cost when
  the backbone compiles).
- ``'lockstep'``: build, load the batches, answer ``ready``, then run one step
  per request read from stdin (``step I``: batch I, its wall and CPU time back
  as one ``BENCH_RESULT`` line; ``finish``: RSS high-water mark, its rise and
  whether every loss was finite, then exit). The parent alternates the sides
  step by step, so a machine whose speed drifts within minutes slows both alike.
- ``'ab'`` (this tree only): one model, ``spec['variant']`` (``model_attrs`` and
  ``optim_wrapper`` overrides, see :func:`apply_overrides`) switched on and off
  between steps in the pattern default, variant, variant, default, ...: what one
  switch buys, on the same weights, allocator and machine minute.
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
    """Set ``model.<path>`` (dotted; every block for ``blocks.*``), which must exist.

    Returns the previous value of the first target.
    """
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
    previous = getattr(targets[0], name)
    for target in targets:
        setattr(target, name, value)
    return previous


def apply_overrides(stepper, variant: dict) -> dict:
    """Switch a built stepper to ``variant`` at run time; returns the overrides undoing it.

    ``model_attrs`` are set as in :func:`set_attr`; ``optim_wrapper`` keys are set on
    the wrapper, except ``optimizer``, whose keys are set in every parameter group
    (e.g. ``fused``, ``foreach``: read by ``AdamW.step`` on each call).
    """
    undo = dict(model_attrs={}, optim_wrapper={})
    for path, value in variant.get('model_attrs', {}).items():
        undo['model_attrs'][path] = set_attr(stepper.model, path, value)
    for key, value in variant.get('optim_wrapper', {}).items():
        if key == 'optimizer':
            groups = stepper.optim_wrapper.optimizer.param_groups
            undo['optim_wrapper']['optimizer'] = {k: groups[0].get(k) for k in value}
            for group in groups:
                group.update(value)
        else:
            if not hasattr(stepper.optim_wrapper, key):
                raise SystemExit(f'optim_wrapper: {key!r} is not a run-time attribute')
            undo['optim_wrapper'][key] = getattr(stepper.optim_wrapper, key)
            setattr(stepper.optim_wrapper, key, value)
    return undo


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


def _reply(payload):
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + '\n')
    sys.stdout.flush()


def serve_lockstep(stepper, batches, ready: dict):
    """Mode ``'lockstep'``: one step per ``step I`` line on stdin (see the module notes)."""
    rss_before = _vm_kib('VmRSS')
    hwm_reset = _reset_hwm()
    _reply(dict(ready, status='ready', batches=len(batches)))
    finite = True
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == 'step':
            t0, c0 = time.perf_counter(), time.process_time()
            losses = stepper.step(batches[int(arg[0])])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            finite = finite and all(np.isfinite(v) for v in losses.values())
            _reply(dict(step=int(arg[0]), time_s=wall, cpu_s=cpu))
        elif cmd == 'finish':
            hwm = _vm_kib('VmHWM')
            _reply(
                dict(
                    status='finished',
                    losses_finite=bool(finite),
                    rss_before_mb=rss_before / 1024,
                    peak_rss_mb=hwm / 1024,
                    peak_rss_delta_mb=(hwm - rss_before) / 1024,
                    peak_rss_source='VmHWM reset before step 1' if hwm_reset else 'VmHWM',
                )
            )
            return
        else:
            raise SystemExit(f'lockstep: unknown request {line.strip()!r}')


def run_ab(spec, stepper, batches):
    """Mode ``'ab'``: the default and ``spec['variant']`` alternated ABBA (see the notes)."""
    warmup, steps = spec['warmup'], spec['steps']
    if warmup + steps > len(batches):
        raise SystemExit(f'{warmup + steps} steps need as many batches, got {len(batches)}')
    times = dict(default=[], variant=[])
    for i, batch in enumerate(batches[: warmup + steps]):
        variant = i % 4 in (1, 2)
        undo = apply_overrides(stepper, spec['variant']) if variant else None
        t0 = time.perf_counter()
        stepper.step(batch)
        elapsed = time.perf_counter() - t0
        if undo is not None:
            apply_overrides(stepper, undo)
        if i >= warmup:
            times['variant' if variant else 'default'].append(elapsed)
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    return dict(
        step_times_s=times,
        mean_step_s=mean,
        variant_over_default=mean['variant'] / mean['default'],
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
    if spec['mode'] == 'lockstep':
        serve_lockstep(stepper, batches, out)
        return 0
    run = dict(time=run_time, ab=run_ab, trajectory=run_trajectory)[spec['mode']]
    out.update(run(spec, stepper, batches))
    sys.stdout.write(RESULT_MARKER + json.dumps(out) + '\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
