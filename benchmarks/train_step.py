#!/usr/bin/env python
"""Training-step benchmark: PerA vs the DINOv2-style baseline vs MMPretrain's MAE.

One *step* is the real training step: ``model.train_step`` (data preprocessor
-> losses -> backward -> grad clip -> AdamW step -> zero_grad, inside the
optimizer wrapper's autocast context) followed, for the self-distillation
methods, by the EMA update ``model.update_teacher(0.999)`` and the centre
update of every DINO loss. Models come from the real configs
(``configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py`` and
``configs/pera/ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py``)
with the backbone arch, image size and head sizes overridden; MAE is
``mmpretrain``'s (MAEViT mask 0.75 + MAEPretrainDecoder + MAEPretrainHead with
the L2 ``PixelReconstructionLoss``) on one view per image. The three use the
same optimizer wrapper config (AutoAmpOptimWrapper: bf16 autocast on GPU,
fp32 on CPU; AdamW; clip 3.0).

Inputs are synthetic images pushed once, outside the timed region, through
the real pipeline transforms (PerAMultiCropViews + DisjointMaskGenerator +
PackInputs + default_collate for PerA and the baseline; RandomResizedCrop +
RandomFlip + PackInputs for MAE).

Every (method, arch, batch, mask ratios) runs in a fresh subprocess. Inside:
build, make the batch, ``warmup`` steps (the last one under
``torch.utils.flop_counter.FlopCounterMode`` plus block hooks that count
tokens), ``steps`` timed steps (median -> img/s), peak memory (CPU: RSS
high-water mark minus RSS before the first step; plus a live-tensor peak
measured by a TorchDispatchMode storage tracker on one extra step, the CPU
analogue of ``torch.cuda.max_memory_allocated``; GPU:
``max_memory_allocated``), then a ``torch.mm`` GEMM probe of the same dtype
for the achieved-FLOP/s fraction.

Examples::

    python benchmarks/train_step.py --out work_dirs/bench/train_step.json
    python benchmarks/train_step.py --quick --out /tmp/ts.json
    python benchmarks/train_step.py --archs base --batch 16 --img-size 448 --no-scaling
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PERA_CFG = 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
BASELINE_CFG = 'configs/pera/ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py'
METHODS = ('pera', 'baseline', 'mae', 'pera_compile')
DEFAULT_METHODS = ('pera', 'baseline', 'mae')
DEFAULT_RATIOS = (0.2, 0.2, 0.6)


# ============================================================== worker side
def _sdpa_cpu_flop_mapping():
    """FlopCounterMode formulas for the CPU SDPA kernels.

    torch's flop registry covers the CUDA flash / efficient / cuDNN attention
    ops but not ``_scaled_dot_product_flash_attention_for_cpu`` (and its
    backward), which is what ``F.scaled_dot_product_attention`` dispatches to
    on CPU; without this mapping attention FLOPs would count as zero.
    """
    import torch
    from torch.utils import flop_counter as fc
    aten = torch.ops.aten
    mapping = {}
    fwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    bwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward', None)
    if fwd is not None and fwd not in fc.flop_registry:
        def sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
            return fc.sdpa_flop_count(query_shape, key_shape, value_shape)
        mapping[fwd] = sdpa_cpu
    if bwd is not None and bwd not in fc.flop_registry:
        def sdpa_cpu_bwd(grad_out_shape, query_shape, key_shape, value_shape, *args,
                         out_shape=None, **kwargs):
            return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape,
                                               value_shape)
        mapping[bwd] = sdpa_cpu_bwd
    return mapping


def local_size_for(img_size, patch=16):
    """Local crop side: img / 4.67 rounded to a patch multiple (448 -> 96, 224 -> 48)."""
    return max(patch, int(round(img_size / 4.67 / patch)) * patch)


def _arch_dims(arch):
    from pera_mm.models.backbones.pera_vit import PerAViT
    return PerAViT.arch_zoo[arch] if isinstance(arch, str) else arch


def build_method(spec):
    """(model, transforms, optim_wrapper_cfg, source image side) for one job."""
    import copy

    from mmengine.config import Config
    from mmpretrain.registry import MODELS, TRANSFORMS

    method, arch, img = spec['method'], spec['arch'], spec['img_size']
    K, dims = spec['prototypes'], _arch_dims(spec['arch'])
    C_ = dims['embed_dims']
    pera_cfg = Config.fromfile(C.REPO / PERA_CFG)
    optim_cfg = copy.deepcopy(pera_cfg.optim_wrapper)
    if method in ('pera', 'pera_compile', 'baseline'):
        cfg = Config.fromfile(C.REPO / BASELINE_CFG) if method == 'baseline' else pera_cfg
        m = cfg.model
        m.backbone.update(arch=arch, img_size=img, with_cp=False,
                          compile=method == 'pera_compile')
        m.projector.update(in_channels=C_, out_channels=K)
        m.cls_loss.update(out_channels=K)
        if m.get('predictor'):
            m.predictor.update(in_channels=C_)
        if m.get('patch_loss'):
            m.patch_loss.update(out_channels=K)
        transforms = []
        for t in cfg.train_dataloader.dataset.pipeline[1:]:  # synthetic images: no file loading
            t = dict(t)
            if t['type'] == 'PerAMultiCropViews':
                t.update(global_crop_size=img, local_crop_size=spec['local_size'],
                         num_local_crops=spec['num_local'])
            if t['type'] == 'DisjointMaskGenerator' and t.get('mode', 'disjoint') == 'disjoint':
                t.update(mask_ratios=tuple(spec['mask_ratios']))
            transforms.append(TRANSFORMS.build(t))
        model_cfg = m
    elif method == 'mae':
        grid = (img // 16) ** 2
        model_cfg = dict(
            type='MAE',
            backbone=dict(type='MAEViT', arch=dict(dims), img_size=img, patch_size=16,
                          mask_ratio=0.75),
            neck=dict(type='MAEPretrainDecoder', num_patches=grid, patch_size=16, in_chans=3,
                      embed_dim=C_, decoder_embed_dim=512, decoder_depth=8,
                      decoder_num_heads=16, mlp_ratio=4.),
            head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                      loss=dict(type='PixelReconstructionLoss', criterion='L2')),
            data_preprocessor=copy.deepcopy(pera_cfg.model.data_preprocessor),
            init_cfg=[dict(type='Xavier', layer='Linear', distribution='uniform'),
                      dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)])
        transforms = [TRANSFORMS.build(t) for t in (
            dict(type='RandomResizedCrop', scale=img, crop_ratio_range=(0.2, 1.0),
                 backend='pillow', interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'))]
    else:
        raise ValueError(f'unknown method {method!r}; expected one of {METHODS}')
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model, transforms, optim_cfg


def make_batch(transforms, batch, src_side, seed):
    import numpy as np
    from mmengine.dataset import default_collate
    rng = np.random.RandomState(seed)
    samples = []
    for i in range(batch):
        results = dict(img=rng.randint(0, 256, (src_side, src_side, 3), dtype=np.uint8),
                       img_path=f'synthetic_{i}.png', img_shape=(src_side, src_side),
                       ori_shape=(src_side, src_side))
        for t in transforms:
            results = t(results)
        samples.append(results)
    return default_collate(samples)


class TokenCounter:
    """Counts tokens entering every transformer block, split into blocks that
    get gradients (student / MAE encoder+decoder) and teacher blocks."""
    BLOCK_TYPES = ('Block', 'TransformerEncoderLayer')

    def __init__(self, model):
        self.handles, self.counts = [], dict(student=0, teacher=0)
        self.depth = dict(student=0, teacher=0)
        for name, mod in model.named_modules():
            if type(mod).__name__ in self.BLOCK_TYPES:
                role = 'teacher' if name.startswith('teacher.') else 'student'
                self.depth[role] += 1
                self.handles.append(mod.register_forward_pre_hook(self._hook(role)))

    def _hook(self, role):
        def hook(mod, args):
            x = args[0]
            self.counts[role] += int(x.shape[0]) * int(x.shape[1])
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _storage_bytes(tensors):
    seen, total = set(), 0
    for t in tensors:
        st = t.untyped_storage()
        key = st.data_ptr()
        if key not in seen:
            seen.add(key)
            total += st.nbytes()
    return total


def static_tensors(model, optimizer, data):
    """Tensors alive between steps: params, buffers, grads, optimizer state, the batch."""
    import torch
    from torch.utils._pytree import tree_flatten
    ts = [p for p in model.parameters()] + [b for b in model.buffers()]
    ts += [p.grad for p in model.parameters() if p.grad is not None]
    for state in optimizer.state.values():
        ts += [v for v in state.values() if torch.is_tensor(v)]
    ts += [t for t in tree_flatten(data['inputs'])[0] if torch.is_tensor(t)]
    return ts


def _live_tensor_peak_cls():
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveTensorPeak(TorchDispatchMode):
        """Peak bytes of tensor storages created while active (the CPU analogue of
        ``torch.cuda.max_memory_allocated`` minus what existed before).

        Every op output whose storage is neither pre-existing (``static``) nor
        already tracked is counted until its storage is freed (weakref on the
        storage object, which PyTorch keeps alive as long as the storage).
        """

        def __init__(self, static=()):
            super().__init__()
            self.static = {t.untyped_storage()._cdata for t in static}
            self.live, self.cur, self.peak = {}, 0, 0

        def _free(self, key):
            self.cur -= self.live.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.device.type != 'meta':
                    st = t.untyped_storage()
                    key = st._cdata
                    if key in self.static or key in self.live:
                        continue
                    n = st.nbytes()
                    self.live[key] = n
                    self.cur += n
                    self.peak = max(self.peak, self.cur)
                    weakref.finalize(st, self._free, key)
            return out

    return LiveTensorPeak


def LiveTensorPeak(static=()):  # noqa: N802  (lazy torch import)
    return _live_tensor_peak_cls()(static)


def gemm_probe(device, dtype, n, seconds):
    """Sustained torch.mm FLOP/s on n x n matrices (same threads as the step)."""
    import torch
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for _ in range(2):
        torch.mm(a, b)
    sync()
    iters, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        iters += 1
        if iters % 2 == 0:
            sync()
            if time.perf_counter() - t0 >= seconds:
                break
    elapsed = time.perf_counter() - t0
    return dict(n=n, dtype=str(dtype).replace('torch.', ''), iters=iters,
                seconds=round(elapsed, 3), gflops=2 * n ** 3 * iters / elapsed / 1e9)


def run_job(spec):
    """Measure one configuration in this process; returns a JSON-able dict."""
    import numpy as np
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from torch.utils.flop_counter import FlopCounterMode

    import pera_mm  # noqa: F401  (registers modules)

    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    C.quiet_mmengine()
    DefaultScope.get_instance(f'bench-{os.getpid()}-{time.time()}', scope_name='mmpretrain')
    torch.manual_seed(spec['seed'])
    np.random.seed(spec['seed'])
    device = torch.device('cuda' if torch.cuda.is_available() and not spec.get('cpu') else 'cpu')
    is_cuda = device.type == 'cuda'
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)

    t_build = time.perf_counter()
    model, transforms, optim_cfg = build_method(spec)
    model.to(device).train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    src_side = max(spec['img_size'] * 8 // 7, spec['img_size'])
    data = make_batch(transforms, spec['batch'], src_side, spec['seed'])
    build_s = time.perf_counter() - t_build
    teacher = hasattr(model, 'update_teacher')
    dino_losses = [getattr(model, n) for n in ('cls_loss', 'patch_loss')
                   if getattr(model, n, None) is not None and hasattr(getattr(model, n),
                                                                     'update_center')]
    last = {}

    def step():
        log_vars = model.train_step(data, optim_wrapper)
        if teacher:
            model.update_teacher(0.999)
            for loss in dino_losses:
                loss.update_center()
        sync()
        last.update(log_vars)

    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out = dict(spec=spec, device=str(device), threads=torch.get_num_threads(),
               build_s=round(build_s, 2), params_m=n_params / 1e6,
               trainable_params_m=n_train / 1e6)

    extras = spec.get('extras', True)  # FLOP count + live-tensor peak (first repeat only)
    gemm_dtype = torch.bfloat16 if is_cuda else torch.float32
    gemm_before = None
    if spec.get('gemm_seconds', 0) > 0:
        gemm_before = gemm_probe(device, gemm_dtype, spec['gemm_size'], spec['gemm_seconds'] / 2)

    # ------------------------------------------------ warm-up (+ FLOPs, tokens)
    if is_cuda:
        torch.cuda.reset_peak_memory_stats()
        out['cuda_static_mb'] = torch.cuda.memory_allocated() / 2**20
    rss_before = C.rss_bytes()
    hwm_reset = C.reset_peak_rss()
    ru_before = C.ru_maxrss_bytes()
    warm_times, flops = [], None
    for i in range(spec['warmup']):
        t0 = time.perf_counter()
        if i == spec['warmup'] - 1 and extras:
            counter = TokenCounter(model)
            with FlopCounterMode(display=False, custom_mapping=_sdpa_cpu_flop_mapping()) as fc:
                step()
            counter.remove()
            flops = fc.get_total_flops()
            by_op = {}
            for mod_counts in fc.get_flop_counts().get('Global', {}).items():
                by_op[str(mod_counts[0]).split('.')[-1]] = int(mod_counts[1])
            out['flops_by_op'] = by_op
            out['tokens'] = dict(
                student_token_blocks_per_img=counter.counts['student'] / spec['batch'],
                teacher_token_blocks_per_img=counter.counts['teacher'] / spec['batch'],
                student_blocks=counter.depth['student'], teacher_blocks=counter.depth['teacher'])
            tk = out['tokens']
            tk['weighted_token_blocks_per_img'] = (3 * tk['student_token_blocks_per_img']
                                                  + tk['teacher_token_blocks_per_img'])
        else:
            step()
        warm_times.append(time.perf_counter() - t0)

    # ------------------------------------------------------------ timed steps
    sampler = C.CpuSampler().start()
    times = []
    for _ in range(spec['steps']):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out['contention'] = sampler.stop()
    hwm = C.peak_rss_bytes() if hwm_reset else C.ru_maxrss_bytes()
    ru_after = C.ru_maxrss_bytes()
    med = C.median(times)
    out.update(warmup_times_s=warm_times, step_times_s=times, step_time_s=med,
               img_per_s=spec['batch'] / med,
               losses={k: float(getattr(v, 'detach', lambda: v)()) for k, v in last.items()})
    out['losses_finite'] = all(np.isfinite(v) for v in out['losses'].values())
    out['flops_per_step'] = flops
    out['gflops_per_img'] = flops / spec['batch'] / 1e9 if flops else None
    out['achieved_gflops'] = flops / med / 1e9 if flops else None
    out['rss_before_mb'] = rss_before / 2**20
    out['peak_rss_delta_mb'] = (hwm - rss_before) / 2**20
    out['peak_rss_source'] = 'VmHWM (reset before step 1)' if hwm_reset else 'ru_maxrss'
    out['ru_maxrss_delta_mb'] = (ru_after - rss_before) / 2**20
    out['ru_maxrss_before_steps_mb'] = ru_before / 2**20
    if is_cuda:
        out['cuda_max_allocated_mb'] = torch.cuda.max_memory_allocated() / 2**20
        out['cuda_dynamic_peak_mb'] = out['cuda_max_allocated_mb'] - out['cuda_static_mb']

    # ------------------------------------------ live-tensor peak (extra step)
    if spec.get('mem_tracker', True) and extras:
        static = static_tensors(model, optim_wrapper.optimizer, data)
        with LiveTensorPeak(static) as tracker:
            step()
        static_mb = _storage_bytes(static) / 2**20
        out['tensor_static_mb'] = static_mb
        out['tensor_dynamic_peak_mb'] = tracker.peak / 2**20
        out['tensor_peak_mb'] = static_mb + tracker.peak / 2**20

    # ----------------------------------------------------------- GEMM probe
    # before the warm-up and after the timed steps; the step's conditions are in
    # between, so the fraction uses the mean of the two
    if gemm_before is not None:
        after = gemm_probe(device, gemm_dtype, spec['gemm_size'], spec['gemm_seconds'] / 2)
        g = dict(after, gflops=(gemm_before['gflops'] + after['gflops']) / 2,
                 gflops_before=gemm_before['gflops'], gflops_after=after['gflops'],
                 seconds=gemm_before['seconds'] + after['seconds'])
        out['gemm'] = g
        out['gemm_fraction'] = (out['achieved_gflops'] / g['gflops']
                                if out['achieved_gflops'] else None)
    return out


def run_group(specs):
    results = []
    for spec in specs:
        results.append(run_job(spec))
    return results


# ======================================================== orchestrator side
def parse_ratios(text):
    vals = tuple(float(x) for x in text.split(','))
    if len(vals) != 3 or abs(sum(vals) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f'mask ratios must be s,l,t summing to 1: {text!r}')
    return vals


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--archs', nargs='+', default=None, help='tiny small base (default)')
    p.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS), choices=METHODS,
                   help="(pera baseline mae); 'pera_compile' = PerA with torch.compile'd "
                        'blocks (compiled during the warm-up steps)')
    p.add_argument('--img-size', type=int, default=None, help='global crop side (224)')
    p.add_argument('--local-size', type=int, default=None,
                   help='local crop side (img/4.67 rounded to 16: 48 at 224, 96 at 448)')
    p.add_argument('--batch', type=int, default=None, help='images per step (8)')
    p.add_argument('--num-local', type=int, default=None, help='local crop pairs (8)')
    p.add_argument('--prototypes', type=int, default=None, help='DINO head K (65536)')
    p.add_argument('--mask-ratios', type=parse_ratios, default=DEFAULT_RATIOS,
                   help='PerA s,l,t for the main table (0.2,0.2,0.6)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up steps (2; last counts FLOPs)')
    p.add_argument('--steps', type=int, default=None, help='timed steps (5)')
    p.add_argument('--repeats', type=int, default=None,
                   help='fresh-process runs per configuration, interleaved; step time = '
                        'median of the runs\' medians (2; 1 with --quick)')
    p.add_argument('--gemm-size', type=int, default=2048)
    p.add_argument('--gemm-seconds', type=float, default=None, help='GEMM probe length (2)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--cpu', action='store_true', help='stay on CPU even with a GPU')
    p.add_argument('--no-mem-tracker', action='store_true',
                   help='skip the extra step that measures the live-tensor peak')
    p.add_argument('--scaling-arch', default=None, help='arch of the scaling study (small)')
    p.add_argument('--scaling-batches', type=int, nargs='+', default=None, help='(4 8 16)')
    p.add_argument('--scaling-ratios', type=parse_ratios, nargs='+', default=None,
                   help='(0.1,0.1,0.8 0.2,0.2,0.6 0.3,0.3,0.4)')
    p.add_argument('--no-scaling', action='store_true')
    p.add_argument('--isolation', choices=('process', 'group'), default='process',
                   help="main table: 'process' = a fresh subprocess per configuration "
                        "(default); 'group' = one subprocess for all (RSS not isolated)")
    p.add_argument('--scaling-isolation', choices=('process', 'group'), default=None,
                   help="the same for the scaling study (default: process; group with --quick)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--wait-load', type=float, default=0.0,
                   help='wait until the 1-min load average is below this before measuring')
    p.add_argument('--wait-deadline', default=None, help="give up waiting at 'HH:MM' UTC")
    p.add_argument('--quick', action='store_true',
                   help='smoke run: tiny arch, 112 px, batch 4, 4 local 48 px crops, '
                        'K=4096, 1+3 steps, grouped scaling with tiny at batches 2 4 8')
    p.add_argument('--out', default=None, help='JSON output path')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p


def resolve_defaults(args):
    quick = dict(archs=['tiny'], img_size=112, local_size=48, batch=4, num_local=4,
                 prototypes=4096, warmup=1, steps=3, gemm_seconds=0.3, scaling_arch='tiny',
                 scaling_batches=[2, 4, 8],
                 scaling_ratios=[(0.1, 0.1, 0.8), (0.2, 0.2, 0.6), (0.3, 0.3, 0.4)],
                 scaling_isolation='group', repeats=1)
    full = dict(archs=['tiny', 'small', 'base'], img_size=224, local_size=None, batch=8,
                num_local=8, prototypes=65536, warmup=2, steps=5, gemm_seconds=2.0,
                scaling_arch='small', scaling_batches=[4, 8, 16],
                scaling_ratios=[(0.1, 0.1, 0.8), (0.2, 0.2, 0.6), (0.3, 0.3, 0.4)],
                scaling_isolation='process', repeats=2)
    base = quick if args.quick else full
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.local_size is None:
        args.local_size = local_size_for(args.img_size)
    if args.warmup < 1:
        raise SystemExit('--warmup must be >= 1 (the last warm-up step counts FLOPs)')
    return args


def spec_for(args, method, arch, batch, ratios):
    return dict(method=method, arch=arch, img_size=args.img_size, local_size=args.local_size,
                batch=batch, num_local=args.num_local, prototypes=args.prototypes,
                mask_ratios=list(ratios), warmup=args.warmup, steps=args.steps,
                gemm_size=args.gemm_size, gemm_seconds=args.gemm_seconds,
                threads=args.threads, cpu=args.cpu, seed=args.seed,
                mem_tracker=not args.no_mem_tracker)


def launch(specs, label):
    """Run ``specs`` in one fresh subprocess; returns their results."""
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(specs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(C.REPO))
    res = C.parse_result(proc.stdout)
    if proc.returncode != 0 or res is None:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f'benchmark worker failed for {label} (exit {proc.returncode})')
    print(f'  [{label}] done in {time.perf_counter() - t0:.1f}s', flush=True)
    return res


def run_specs(specs, isolation, label, repeats=1):
    """Run every spec ``repeats`` times, interleaved (forward, then reversed order,
    ...), so slow drifts of the machine hit every configuration alike; returns one
    merged result per spec, in order."""
    if not specs:
        return []
    runs = [[] for _ in specs]
    for rep in range(repeats):
        order = list(range(len(specs)))
        if rep % 2:
            order.reverse()
        batch = [dict(specs[i], extras=rep == 0, repeat=rep) for i in order]
        if isolation == 'group':
            got = launch(batch, f'{label}: {len(batch)} configs in one process, '
                                f'repeat {rep + 1}/{repeats}')
        else:
            got = []
            for s in batch:
                got.extend(launch([s], f"{label}: {s['method']} {s['arch']} b{s['batch']} "
                                       f"r{tuple(s['mask_ratios'])} "
                                       f'(repeat {rep + 1}/{repeats})'))
        for i, r in zip(order, got):
            runs[i].append(r)
    return [merge_runs(rs) for rs in runs]


def merge_runs(runs):
    """One result from repeated runs of a spec: medians over the runs' median step
    times and GEMM probes; FLOPs, tokens and tensor peaks come from the first run."""
    first = runs[0]
    out = dict(first)
    out['spec'] = {k: v for k, v in first['spec'].items() if k not in ('extras', 'repeat')}
    if len(runs) == 1:
        out['repeats'] = 1
        return out
    med = C.median([r['step_time_s'] for r in runs])
    b = first['spec']['batch']
    out.update(step_time_s=med, img_per_s=b / med, repeats=len(runs),
               step_times_s=[t for r in runs for t in r['step_times_s']],
               peak_rss_delta_mb=C.median([r['peak_rss_delta_mb'] for r in runs]),
               runs=[dict(step_time_s=r['step_time_s'], step_times_s=r['step_times_s'],
                          gemm_gflops=r.get('gemm', {}).get('gflops'),
                          peak_rss_delta_mb=r['peak_rss_delta_mb'],
                          contention=r['contention']) for r in runs],
               losses_finite=all(r['losses_finite'] for r in runs))
    if first.get('flops_per_step'):
        out['achieved_gflops'] = first['flops_per_step'] / med / 1e9
    if all('gemm' in r for r in runs):
        g = C.median([r['gemm']['gflops'] for r in runs])
        out['gemm'] = dict(first['gemm'], gflops=g,
                           gflops_runs=[r['gemm']['gflops'] for r in runs])
        out['gemm_fraction'] = out['achieved_gflops'] / g if out.get('achieved_gflops') else None
    out['contention'] = dict(first['contention'], foreign_cores=max(
        r['contention'].get('foreign_cores') or 0 for r in runs))
    return out


def _ratio(a, b):
    return a / b if (a is not None and b not in (None, 0)) else None


def summarise(results, args):
    by = {(r['spec']['method'], r['spec']['arch']): r for r in results}
    ratios, targets = {}, {}
    mem_key = 'cuda_max_allocated_mb' if any('cuda_max_allocated_mb' in r for r in results) \
        else 'peak_rss_delta_mb'
    for arch in args.archs:
        p = by.get(('pera', arch))
        if p is None:
            continue
        entry = {}
        for other in ('baseline', 'mae', 'pera_compile'):
            o = by.get((other, arch))
            if o is None:
                continue
            entry[f'pera_vs_{other}'] = dict(
                throughput=_ratio(p['img_per_s'], o['img_per_s']),
                step_time=_ratio(p['step_time_s'], o['step_time_s']),
                gflops_per_img=_ratio(p['gflops_per_img'], o['gflops_per_img']),
                peak_mem=_ratio(p.get(mem_key), o.get(mem_key)),
                peak_mem_source=mem_key,
                tensor_peak=_ratio(p.get('tensor_peak_mb'), o.get('tensor_peak_mb')),
                tensor_dynamic_peak=_ratio(p.get('tensor_dynamic_peak_mb'),
                                           o.get('tensor_dynamic_peak_mb')),
            )
        entry['pera_gemm_fraction'] = p.get('gemm_fraction')
        ratios[arch] = entry
        if arch in ('small', 'base') and 'pera_vs_baseline' in entry:
            pb = entry['pera_vs_baseline']
            targets[arch] = dict(
                throughput_ge_2x=dict(value=pb['throughput'], target=2.0,
                                      met=bool(pb['throughput'] and pb['throughput'] >= 2.0)),
                peak_mem_le_0_25x=dict(value=pb['peak_mem'], target=0.25,
                                       met=bool(pb['peak_mem'] is not None
                                                and pb['peak_mem'] <= 0.25)),
                tensor_peak_le_0_25x=dict(value=pb['tensor_peak'], target=0.25,
                                          met=bool(pb['tensor_peak'] is not None
                                                   and pb['tensor_peak'] <= 0.25)),
                gemm_fraction_ge_0_5=dict(value=entry['pera_gemm_fraction'], target=0.5,
                                          met=bool(entry['pera_gemm_fraction']
                                                   and entry['pera_gemm_fraction'] >= 0.5)))
    return ratios, targets


def scaling_summary(results, args):
    base_r = list(DEFAULT_RATIOS)
    mid_batch = sorted(args.scaling_batches)[len(args.scaling_batches) // 2]
    by_batch = sorted((r for r in results if r['spec']['mask_ratios'] == base_r),
                      key=lambda r: r['spec']['batch'])
    by_batch = [r for r in by_batch if r['spec']['batch'] in args.scaling_batches]
    by_ratio = [r for r in results if r['spec']['batch'] == mid_batch
                and tuple(r['spec']['mask_ratios']) in {tuple(x) for x in args.scaling_ratios}]
    by_ratio.sort(key=lambda r: r['tokens']['weighted_token_blocks_per_img'])

    def row(r):
        tk = r['tokens']
        return dict(batch=r['spec']['batch'], mask_ratios=r['spec']['mask_ratios'],
                    step_time_s=r['step_time_s'], img_per_s=r['img_per_s'],
                    gflops_per_step=r['flops_per_step'] / 1e9,
                    student_tokens_per_img=tk['student_token_blocks_per_img'] /
                    max(tk['student_blocks'], 1),
                    teacher_tokens_per_img=tk['teacher_token_blocks_per_img'] /
                    max(tk['teacher_blocks'], 1),
                    weighted_token_blocks_per_img=tk['weighted_token_blocks_per_img'],
                    tensor_peak_mb=r.get('tensor_peak_mb'),
                    tensor_dynamic_peak_mb=r.get('tensor_dynamic_peak_mb'),
                    foreign_cores=r['contention'].get('foreign_cores'))
    batch_rows = [row(r) for r in by_batch]
    ratio_rows = [row(r) for r in by_ratio]
    fits = dict(
        time_vs_batch=C.linear_fit([x['batch'] for x in batch_rows],
                                   [x['step_time_s'] for x in batch_rows]),
        flops_vs_batch=C.linear_fit([x['batch'] for x in batch_rows],
                                    [x['gflops_per_step'] for x in batch_rows]),
        time_vs_weighted_tokens=C.linear_fit(
            [x['weighted_token_blocks_per_img'] for x in ratio_rows],
            [x['step_time_s'] for x in ratio_rows]),
        time_vs_gflops=C.linear_fit([x['gflops_per_step'] for x in batch_rows + ratio_rows],
                                    [x['step_time_s'] for x in batch_rows + ratio_rows]))
    if all(x['tensor_dynamic_peak_mb'] is not None for x in batch_rows):
        fits['dynamic_mem_vs_batch'] = C.linear_fit(
            [x['batch'] for x in batch_rows], [x['tensor_dynamic_peak_mb'] for x in batch_rows])
    return dict(arch=args.scaling_arch, img_size=args.img_size, batch_rows=batch_rows,
                ratio_batch=mid_batch, ratio_rows=ratio_rows, fits=fits)


def print_report(results, ratios, targets, scaling):
    rows = []
    for r in results:
        s = r['spec']
        mem = r.get('cuda_max_allocated_mb', r['peak_rss_delta_mb'])
        spread = None
        if r.get('runs'):
            ms = [x['step_time_s'] for x in r['runs']]
            spread = f"{100 * (max(ms) - min(ms)) / r['step_time_s']:.0f}%"
        rows.append([s['method'], s['arch'], s['batch'], r['step_time_s'], spread, r['img_per_s'],
                     r['gflops_per_img'], r['achieved_gflops'], r.get('gemm_fraction'),
                     mem, r.get('tensor_peak_mb'), r.get('tensor_dynamic_peak_mb'),
                     r['contention'].get('foreign_cores')])
    print('\nTraining step (median of timed steps; GFLOPs = fwd+bwd per image)')
    print(C.table(rows, ['method', 'arch', 'batch', 'step s', 'spread', 'img/s', 'GFLOP/img',
                         'GFLOP/s', 'of GEMM', 'peak MB', 'tensor MB', 'dyn MB', 'other cpu']))
    print('step s: median over repeats of each fresh process\'s median step; spread: range of '
          'the per-process medians / median;\n'
          'peak MB: CUDA max allocated on GPU, else RSS high-water mark minus RSS before '
          'step 1;\ntensor MB: live-tensor peak (dispatch tracker); dyn MB: tensor peak minus '
          'params/buffers/optimizer state; other cpu: cores used by other processes')
    rows = []
    for arch, e in ratios.items():
        for k, v in e.items():
            if isinstance(v, dict):
                rows.append([arch, k.replace('pera_vs_', 'PerA / '), v['throughput'],
                             v['gflops_per_img'], v['peak_mem'], v['tensor_peak'],
                             v['tensor_dynamic_peak']])
    if rows:
        print('\nRatios (PerA / other)')
        print(C.table(rows, ['arch', 'pair', 'throughput', 'GFLOP/img', 'peak mem',
                             'tensor peak', 'dyn peak']))
    if targets:
        print('\nTargets')
        rows = []
        for arch, t in targets.items():
            for name, v in t.items():
                rows.append([arch, name, v['value'], v['target'], 'met' if v['met'] else 'MISSED'])
        print(C.table(rows, ['arch', 'target', 'value', 'goal', 'status']))
    if scaling:
        print(f"\nScaling, PerA {scaling['arch']} at {scaling['img_size']} px")
        hdr = ['batch', 'ratios s,l,t', 'step s', 'GFLOP/step', 'student tok', 'teacher tok',
               'w.tok-blocks/img', 'dyn MB']
        rows = [[x['batch'], ','.join(f'{v:g}' for v in x['mask_ratios']), x['step_time_s'],
                 x['gflops_per_step'], x['student_tokens_per_img'], x['teacher_tokens_per_img'],
                 x['weighted_token_blocks_per_img'], x['tensor_dynamic_peak_mb']]
                for x in scaling['batch_rows'] + scaling['ratio_rows']]
        print(C.table(rows, hdr))
        for name, f in scaling['fits'].items():
            print(f"  fit {name}: slope {f['slope']:.4g}, intercept {f['intercept']:.4g} "
                  f"({100 * f.get('intercept_share', float('nan')):.1f}% of max), "
                  f"R^2 {f['r2']:.4f}")
        print('  w.tok-blocks/img = 3 x student + 1 x teacher token-blocks per image '
              '(fwd+bwd vs fwd only)')


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.worker:
        C.emit_result(run_group(json.loads(args.worker)))
        return 0
    args = resolve_defaults(args)
    gate = C.wait_for_quiet(args.wait_load, args.wait_deadline)
    meta = C.machine_info()
    meta['load_gate'] = gate
    print(f"{meta['cpu_model']} | torch {meta.get('torch')} | threads "
          f"{meta.get('torch_threads')} | load {meta['loadavg_start']}", flush=True)
    t0 = time.perf_counter()
    main_specs = [spec_for(args, m, a, args.batch, args.mask_ratios)
                  for a in args.archs for m in args.methods]
    scaling_specs = []
    if not args.no_scaling and 'pera' in args.methods:
        mid = sorted(args.scaling_batches)[len(args.scaling_batches) // 2]
        keys = [(b, tuple(DEFAULT_RATIOS)) for b in args.scaling_batches]
        keys += [(mid, tuple(r)) for r in args.scaling_ratios]
        keys = list(dict.fromkeys(keys))
        scaling_specs = [spec_for(args, 'pera', args.scaling_arch, b, r) for b, r in keys]
    # a scaling point identical to a main-table configuration is measured once
    key = json.dumps
    extra = [s for s in scaling_specs if key(s, sort_keys=True) not in
             {key(m, sort_keys=True) for m in main_specs}]
    if args.isolation == 'group' and args.scaling_isolation == 'group':
        both = run_specs(main_specs + extra, 'group', 'main + scaling', args.repeats)
        results, extra_results = both[:len(main_specs)], both[len(main_specs):]
    else:
        results = run_specs(main_specs, args.isolation, 'main', args.repeats)
        extra_results = run_specs(extra, args.scaling_isolation, 'scaling', args.repeats)
    by_spec = {key(r['spec'], sort_keys=True): r for r in results + extra_results}
    scaling_results = [by_spec[key(s, sort_keys=True)] for s in scaling_specs]
    ratios, targets = summarise(results, args)
    scaling = scaling_summary(scaling_results, args) if scaling_specs else None
    meta['loadavg_end'] = C.loadavg()
    meta['total_s'] = round(time.perf_counter() - t0, 1)
    meta['args'] = {k: v for k, v in vars(args).items() if k != 'worker'}
    print_report(results, ratios, targets, scaling)
    payload = dict(meta=meta, results=results, ratios=ratios, targets=targets,
                   scaling=scaling, scaling_results=scaling_results)
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    print(f"total {meta['total_s']}s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
