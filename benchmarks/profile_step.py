#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""Where the PerA training step spends its time: a per-phase ``torch.profiler`` table.

The step is the one the train-step benchmark times (``model.train_step``: data
preprocessor, losses, backward, clip, AdamW) plus what the training hooks do
after it, run through the hooks themselves: teacher EMA (``TeacherEMAHook``),
DINO centre (``CenterUpdateHook``), collapse monitor (``CollapseMonitorHook``,
which also decides on which iterations PerA computes its statistics) and
MMEngine's ``RuntimeInfoHook`` (every output to the message hub). Each of
``--batches`` profiled steps gets its own batch; warm-up steps get others.

Every profiled op is given a phase: forward ops by the module or method they
run in (labelled with ``record_function`` ranges), backward ops by the forward
op that created their autograd node (the profiler's ``sequence_nr``), then
split by op kind (GEMM, attention, gathers/scatters) inside the backbone. Self
CPU times are summed, so the phases partition the profiled time; on a shared
machine read them as shares, not absolute times. Host syncs are counted as
``aten::_local_scalar_dense`` calls per step (``.item()``, ``float(t)``,
``bool(t)``): cheap on a CPU, a pipeline stall on a GPU.

Writes ``PREFIX.json`` (phases, ops per phase, host syncs per phase, step
times) and ``PREFIX.txt`` (the same as tables).

Examples::

    python benchmarks/profile_step.py --quick --out-prefix /tmp/profile_quick
    python benchmarks/profile_step.py --out-prefix benchmarks/results/profile_step_small_cpu
    python benchmarks/profile_step.py --monitor-interval 10 --foreach \\
        --out-prefix benchmarks/results/profile_step_small_cpu_switches
"""

import argparse
import collections
import copy
import sys
import time
import types
from pathlib import Path

import _common as C

# the step: ViT-S, batch 8, 2 x 224 + 8 x 96 crops, K = 4096 (heads 2048/384,
# drop path 0.3, AdamW, clip 3.0 come from the PerA config)
FULL = dict(arch='small', img_size=224, local_size=96, num_local=8, batch=8, prototypes=4096)
QUICK = dict(arch='tiny', img_size=112, local_size=48, num_local=4, batch=4, prototypes=1024)
MASK_RATIOS = (0.2, 0.2, 0.6)
SYNC_OP = 'aten::_local_scalar_dense'
PHASE_PREFIX = 'phase::'
# modules whose forward is one phase (the innermost labelled module wins)
MODULE_PHASES = (
    ('data_preprocessor', 'data_preprocessor'),
    ('backbone', 'backbone_other'),
    ('teacher.backbone', 'backbone_other'),
    ('backbone.patch_embed', 'embedding'),
    ('teacher.backbone.patch_embed', 'embedding'),
    ('projector', 'heads'),
    ('teacher.projector', 'heads'),
    ('predictor', 'heads'),
    ('pixel_loss', 'losses'),
    ('koleo_loss', 'losses'),
)
BLOCK_TYPES = ('Block',)
# op kinds split out of the backbone phases (forward op names and backward node names)
# (the oneDNN block linears: mkldnn::_linear_pointwise and its autograd wrapper)
GEMM_OPS = ('addmm', 'mm', 'bmm', 'matmul', 'linear', 'baddbmm', '_linear_pointwise')
GEMM_FUNCTIONS = ('_onednnlinear', '_onednnlinearbackward')
ATTN_KEYS = ('scaled_dot_product', 'scaleddotproduct', 'flash_attention', 'flashattention')
GATHER_OPS = (
    'gather',
    'scatter',
    'scatter_add',
    'index',
    'index_select',
    'index_put',
    'index_put_',
    'index_add',
    'index_add_',
    'take_along_dim',
    'masked_scatter',
)
BACKBONE_PHASES = ('blocks', 'backbone_other', 'embedding')


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--arch', default=None, help='PerAViT arch (small; tiny with --quick)')
    p.add_argument('--img-size', type=int, default=None, help='global crop side (224)')
    p.add_argument('--local-size', type=int, default=None, help='local crop side (96)')
    p.add_argument('--num-local', type=int, default=None, help='local crop pairs (8)')
    p.add_argument('--batch', type=int, default=None, help='images per step (8)')
    p.add_argument('--prototypes', type=int, default=None, help='DINO head K (4096)')
    p.add_argument('--batches', type=int, default=4, help='profiled steps, one batch each (4)')
    p.add_argument('--warmup', type=int, default=2, help='unprofiled warm-up steps (2)')
    p.add_argument(
        '--monitor-interval',
        type=int,
        default=None,
        help="CollapseMonitorHook interval (default: the config's collapse_monitor)",
    )
    p.add_argument(
        '--foreach',
        choices=('config', 'on', 'off'),
        default='config',
        help="AdamW foreach: the config's setting (default), forced on or off",
    )
    p.add_argument('--threads', type=int, default=2, help='torch threads (2)')
    p.add_argument('--top', type=int, default=8, help='ops listed per phase (8)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--quick', action='store_true', help='smoke run: ViT-Ti, 112 px, batch 4')
    p.add_argument('--out-prefix', required=True, help='writes PREFIX.json and PREFIX.txt')
    return p


# ------------------------------------------------------------------ labelling
class PhaseLabels:
    """``record_function`` ranges around module forwards and chosen methods.

    Args:
        model (nn.Module): the PerA model.
        optim_wrapper: its optimizer wrapper.
    """

    def __init__(self, model, optim_wrapper):
        from torch.autograd.profiler import record_function

        self._rf = record_function
        self.handles, self.patched = [], []
        modules = dict(model.named_modules())
        for name, phase in MODULE_PHASES:
            if modules.get(name) is not None:
                self._label_module(modules[name], phase)
        for name, mod in modules.items():
            if type(mod).__name__ in BLOCK_TYPES:
                self._label_module(mod, 'blocks')
        self._label_method(model.cls_loss, 'forward_heads', 'losses')
        self._label_method(model, '_collapse_stats', 'collapse_monitor')
        self._label_method(model, 'loss', 'forward_other')
        self._label_method(optim_wrapper, 'backward', 'backward_other')
        self._label_method(optim_wrapper, '_clip_grad', 'clip_grad')
        if hasattr(optim_wrapper, '_is_nonfinite'):
            self._label_method(optim_wrapper, '_is_nonfinite', 'nonfinite_check')
        self._label_method(optim_wrapper.optimizer, 'step', 'adamw')
        self._label_method(optim_wrapper.optimizer, 'zero_grad', 'zero_grad')

    def _label_module(self, mod, phase):
        stack = []

        def pre(module, args):
            rf = self._rf(PHASE_PREFIX + phase)
            rf.__enter__()
            stack.append(rf)

        def post(module, args, out):
            stack.pop().__exit__(None, None, None)

        self.handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]

    def _label_method(self, obj, name, phase):
        fn = getattr(obj, name)
        rf = self._rf

        def labelled(*args, **kwargs):
            with rf(PHASE_PREFIX + phase):
                return fn(*args, **kwargs)

        setattr(obj, name, labelled)
        self.patched.append((obj, name))

    def remove(self):
        for h in self.handles:
            h.remove()
        for obj, name in self.patched:
            delattr(obj, name)  # back to the class attribute


def op_kind(name):
    """'gemm', 'attention', 'gather_scatter' or 'other' of an op or backward-node name."""
    low = name.lower()
    if any(k in low for k in ATTN_KEYS):
        return 'attention'
    base = low.split('::')[-1]
    if base.endswith('backward0') or base.endswith('backward1'):
        base = base[: -len('backward0')]
        base = base.rstrip('_')
    if base in GEMM_OPS or low in GEMM_FUNCTIONS:
        return 'gemm'
    if base in GATHER_OPS or base in ('indexput', 'indexselect', 'indexadd', 'scatteradd'):
        return 'gather_scatter'
    return 'other'


def final_phase(phase, kind):
    """The reported phase: backbone ops split into GEMMs, attention, gathers/scatters."""
    if phase in BACKBONE_PHASES:
        if kind == 'gather_scatter':
            return 'sparse_gather_scatter'
        if phase == 'blocks':
            return {'gemm': 'block_gemm', 'attention': 'attention'}.get(kind, 'block_other')
    return phase


def _is_backward_node(name):
    return name.startswith('autograd::engine::evaluate_function:')


def attribute(events):
    """Phase of every profiler event (see the module docstring).

    Returns:
        list[tuple]: ``(event, phase)`` for every event.
    """
    memo = {}

    def range_phase(ev):
        """Nearest labelled ancestor range (or a backward node with a known forward).

        Returns ``('range', phase, top op name)``, ``('bwd', node event)`` or None;
        the top op is the outermost op under the range, whose kind its children share.
        """
        chain, cur, found = [], ev, None
        while cur is not None:
            if id(cur) in memo:
                found = memo[id(cur)]
                break
            chain.append(cur)
            if cur.name.startswith(PHASE_PREFIX):
                found = ('range', cur.name[len(PHASE_PREFIX) :], None)
                break
            if _is_backward_node(cur.name):
                found = ('bwd', cur)
                break
            cur = cur.cpu_parent
        # walk back down: each event below the range knows its outermost op
        for c in reversed(chain):
            if found is not None and found[0] == 'range' and not c.name.startswith(PHASE_PREFIX):
                if found[2] is None:
                    found = ('range', found[1], c.name)
            memo[id(c)] = found
        return found

    # forward ops that created autograd nodes: sequence_nr -> (phase, kind)
    by_seq = {}
    for ev in events:
        if ev.sequence_nr < 0 or _is_backward_node(ev.name) or 'Backward' in ev.name:
            continue
        found = range_phase(ev)
        phase = found[1] if found and found[0] == 'range' else 'other'
        by_seq.setdefault(ev.sequence_nr, (phase, op_kind(ev.name)))

    out = []
    for ev in events:
        found = range_phase(ev)
        if found is None:
            phase = 'other'
        elif found[0] == 'range':
            phase = final_phase(found[1], op_kind(found[2] or ev.name))
        else:
            node = found[1]
            node_name = node.name.rsplit(': ', 1)[-1].strip()
            if 'AccumulateGrad' in node_name:
                phase = 'accumulate_grad'
            else:
                fwd = by_seq.get(node.sequence_nr, ('backward_other', 'other'))
                phase = final_phase(fwd[0], op_kind(node_name))
        out.append((ev, phase))
    return out


def summarise(attributed, steps, top):
    """Per-phase self CPU time, host syncs and top ops, per step."""
    total = collections.Counter()
    syncs = collections.Counter()
    ops = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0]))
    for ev, phase in attributed:
        if ev.name.startswith(PHASE_PREFIX):
            t = ev.self_cpu_time_total  # Python glue between labelled children
            name = '(python in ' + ev.name[len(PHASE_PREFIX) :] + ')'
        else:
            t = ev.self_cpu_time_total
            name = ev.name
        total[phase] += t
        ops[phase][name][0] += t
        ops[phase][name][1] += 1
        if ev.name == SYNC_OP:
            syncs[phase] += 1
    grand = sum(total.values())
    phases = []
    for phase, t in total.most_common():
        top_ops = sorted(ops[phase].items(), key=lambda kv: -kv[1][0])[:top]
        phases.append(
            dict(
                phase=phase,
                ms_per_step=t / 1e3 / steps,
                share=t / grand if grand else 0.0,
                host_syncs_per_step=syncs[phase] / steps,
                top_ops=[
                    dict(op=n, ms_per_step=v[0] / 1e3 / steps, calls_per_step=v[1] / steps)
                    for n, v in top_ops
                ],
            )
        )
    return dict(
        profiled_ms_per_step=grand / 1e3 / steps,
        host_syncs_per_step=sum(syncs.values()) / steps,
        phases=phases,
    )


# ------------------------------------------------------------------- the step
class HookedStep:
    """One PerA step as the runner runs it: before-iter hooks, train_step, after-iter hooks.

    Args:
        spec (dict): ``_methods.build_method`` spec.
        cfg (Config): the PerA config (hook settings from its fields).
        monitor_interval (int, optional): overrides ``collapse_monitor.interval``.
        foreach (str): 'config', 'on' or 'off' for AdamW's ``foreach``.
        max_iters (int): the run length the EMA momentum schedule sees.
    """

    def __init__(self, spec, cfg, monitor_interval=None, foreach='config', max_iters=1000):
        from _methods import build_method
        from mmengine.hooks import RuntimeInfoHook
        from mmengine.logging import MessageHub, MMLogger
        from mmengine.optim import build_optim_wrapper
        from mmpretrain.registry import HOOKS

        self.model, self.transforms, optim_cfg, _ = build_method(spec)
        self.model.train()
        optim_cfg = copy.deepcopy(optim_cfg)
        if foreach != 'config':
            optim_cfg['optimizer']['foreach'] = foreach == 'on'
        self.optim_wrapper = build_optim_wrapper(self.model, optim_cfg)
        cfg = copy.deepcopy(cfg)
        if monitor_interval is not None:
            cfg.collapse_monitor = dict(cfg.get('collapse_monitor', {}), interval=monitor_interval)
        names = ('TeacherEMAHook', 'CenterUpdateHook', 'CollapseMonitorHook')
        self.hooks = [HOOKS.build(dict(type=n)) for n in names]
        self.hooks.append(RuntimeInfoHook())
        hub = MessageHub.get_instance(f'profile-step-{time.time()}')
        self.runner = types.SimpleNamespace(
            model=self.model,
            optim_wrapper=self.optim_wrapper,
            message_hub=hub,
            iter=0,
            max_iters=max_iters,
            cfg=cfg,
            logger=MMLogger.get_current_instance(),
        )
        self.optim_wrapper.message_hub = hub
        for h in self.hooks:
            if hasattr(h, 'cfg_field'):
                h.before_run(self.runner)
        self.phase_of_hook = dict(
            TeacherEMAHook='ema',
            CenterUpdateHook='centre',
            CollapseMonitorHook='collapse_monitor',
            RuntimeInfoHook='logging',
        )

    def __call__(self, data):
        from torch.autograd.profiler import record_function

        r = self.runner
        for h in self.hooks:
            with record_function(PHASE_PREFIX + self.phase_of_hook[type(h).__name__]):
                h.before_train_iter(r, r.iter, data)
        out = self.model.train_step(data, self.optim_wrapper)
        for h in self.hooks:
            with record_function(PHASE_PREFIX + self.phase_of_hook[type(h).__name__]):
                h.after_train_iter(r, r.iter, data, out)
        r.iter += 1
        return out


def run(args):
    import numpy as np
    import torch
    from _methods import PERA_CFG, source_side
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from torch.profiler import ProfilerActivity, profile
    from tqdm import tqdm

    import pera_mm  # noqa: F401  (registers the modules)
    from pera_mm.testing import synthetic_batch

    torch.set_num_threads(args.threads)
    machine = C.machine_info()  # before the run: its load average is the starting one
    C.quiet_mmengine()
    DefaultScope.get_instance(f'profile-step-{time.time()}', scope_name='mmpretrain')
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    spec = dict(
        method='pera',
        arch=args.arch,
        img_size=args.img_size,
        local_size=args.local_size,
        num_local=args.num_local,
        batch=args.batch,
        prototypes=args.prototypes,
        mask_ratios=MASK_RATIOS,
        seed=args.seed,
    )
    cfg = Config.fromfile(C.REPO / PERA_CFG)
    step = HookedStep(spec, cfg, args.monitor_interval, args.foreach)
    n_total = args.warmup + 2 * args.batches
    side = source_side(args.img_size)
    batches = [
        synthetic_batch(step.transforms, args.batch, side, seed=args.seed + i)
        for i in tqdm(range(n_total), desc='batches', leave=False)
    ]
    for data in tqdm(batches[: args.warmup], desc='warm-up', leave=False):
        step(data)
    times = []  # unprofiled steps on their own batches
    for data in tqdm(batches[args.warmup : args.warmup + args.batches], desc='timed'):
        t0 = time.perf_counter()
        step(data)
        times.append(time.perf_counter() - t0)
    labels = PhaseLabels(step.model, step.optim_wrapper)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for data in tqdm(batches[args.warmup + args.batches :], desc='profiled'):
            step(data)
    labels.remove()
    events = prof.events()
    summary = summarise(attribute(events), args.batches, args.top)
    monitor = next(h for h in step.hooks if type(h).__name__ == 'CollapseMonitorHook')
    return dict(
        machine=machine,
        spec=spec,
        threads=torch.get_num_threads(),
        monitor_interval=getattr(monitor, 'interval', 1),
        adamw_foreach=step.optim_wrapper.optimizer.defaults.get('foreach'),
        warmup_steps=args.warmup,
        profiled_steps=args.batches,
        distinct_batches=n_total,
        unprofiled_step_times_s=times,
        unprofiled_mean_step_s=sum(times) / len(times),
        loadavg_end=C.loadavg(),
        **summary,
    )


def render(result):
    lines = [
        f'PerA step profile: {result["spec"]["arch"]}, batch {result["spec"]["batch"]}, '
        f'{result["spec"]["img_size"]} px globals + {result["spec"]["num_local"]} x '
        f'{result["spec"]["local_size"]} px locals, K={result["spec"]["prototypes"]}, '
        f'{result["threads"]} threads, monitor interval {result["monitor_interval"]}, '
        f'AdamW foreach={result["adamw_foreach"]}',
        f'unprofiled mean step {result["unprofiled_mean_step_s"]:.3f} s over '
        f'{result["profiled_steps"]} steps; profiled self CPU '
        f'{result["profiled_ms_per_step"]:.1f} ms/step; host syncs '
        f'({SYNC_OP}) {result["host_syncs_per_step"]:.1f}/step; load {result["loadavg_end"]}',
        '',
    ]
    rows = [
        (p['phase'], f'{p["ms_per_step"]:.1f}', f'{100 * p["share"]:.1f}', p['host_syncs_per_step'])
        for p in result['phases']
    ]
    lines.append(C.table(rows, ('phase', 'ms/step', 'share %', 'syncs/step')))
    for p in result['phases']:
        lines += ['', f'[{p["phase"]}]']
        rows = [
            (o['op'][:70], f'{o["ms_per_step"]:.2f}', f'{o["calls_per_step"]:.1f}')
            for o in p['top_ops']
        ]
        lines.append(C.table(rows, ('op', 'ms/step', 'calls/step')))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = make_parser().parse_args(argv)
    base = QUICK if args.quick else FULL
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for name in ('batches', 'warmup', 'threads', 'top'):
        if getattr(args, name) < (0 if name == 'warmup' else 1):
            raise SystemExit(f'profile_step.py: --{name} must be >= 1, got {getattr(args, name)}')
    if args.monitor_interval is not None and args.monitor_interval < 1:
        raise SystemExit(
            f'profile_step.py: --monitor-interval must be >= 1, got {args.monitor_interval}'
        )
    prefix = Path(args.out_prefix)
    if not prefix.parent.is_dir():
        raise SystemExit(f'profile_step.py: --out-prefix folder {prefix.parent} does not exist')
    try:
        result = run(args)
    except (ValueError, KeyError, FileNotFoundError) as err:  # bad sizes/arch: one line
        raise SystemExit(f'profile_step.py: {type(err).__name__}: {err}') from None
    C.write_json(prefix.with_suffix('.json'), result)
    text = render(result)
    prefix.with_suffix('.txt').write_text(text)
    print(text)
    print(f'wrote {prefix.with_suffix(".json")} and {prefix.with_suffix(".txt")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
