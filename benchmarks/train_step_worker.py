# Copyright (c) pera-mm contributors. All rights reserved.
"""Benchmark worker: build one method and time its training step in this (fresh) process.

Started by ``train_step.py`` as ``python benchmarks/train_step_worker.py SPECS_JSON``
with a JSON list of job specs; prints one ``BENCH_RESULT`` line with a result per spec.

Per spec: build the model and a synthetic batch (outside the timed region), run
``warmup`` steps (the last one under the FLOP counter and the block token
hooks), ``steps`` timed steps (median -> img/s), read the peak memory (CUDA
``max_memory_allocated``; on CPU the RSS high-water mark minus RSS before step
1), measure the live-tensor peak on one extra step, and probe the GEMM peak
before and after.
"""

import json
import os
import sys
import time

import _common as C
import _measure as M
import numpy as np
import torch
from _methods import build_method, input_size, local_size_for, source_side
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401  (registers the modules)
from pera_mm.testing import synthetic_batch


class Job:
    """One configuration built and ready to step.

    Args:
        spec (dict): the job (see ``train_step.spec_for``).
    """

    def __init__(self, spec):
        self.spec = spec
        cpu_only = spec.get('cpu') or not torch.cuda.is_available()
        self.device = torch.device('cpu' if cpu_only else 'cuda')
        self.sync = torch.cuda.synchronize if self.device.type == 'cuda' else (lambda: None)
        t0 = time.perf_counter()
        self.model, transforms, optim_cfg, self.momentum = build_method(spec)
        self.model.to(self.device).train()
        self.optim_wrapper = build_optim_wrapper(self.model, optim_cfg)
        self.data = synthetic_batch(
            transforms, spec['batch'], source_side(input_size(spec)), seed=spec['seed']
        )
        self.build_s = time.perf_counter() - t0
        self.teacher = hasattr(self.model, 'update_teacher')
        self.centres = [
            loss
            for loss in (getattr(self.model, n, None) for n in ('cls_loss', 'patch_loss'))
            if loss is not None and hasattr(loss, 'update_center')
        ]
        self.log_vars = {}

    def step(self):
        """``train_step`` (+ EMA and centre updates for the self-distillation methods).

        I-JEPA's EMA runs here (``update_teacher``, after the optimizer step, as its
        hook does); LatentMIM's runs inside its forward, before the optimizer step.
        """
        self.log_vars = self.model.train_step(self.data, self.optim_wrapper)
        if self.teacher:
            self.model.update_teacher(self.momentum)
            for loss in self.centres:
                loss.update_center()
        self.sync()

    def timed(self, n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - t0)
        return times


def run_job(spec):
    """Measure one configuration in this process; returns a JSON-able dict."""
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    C.quiet_mmengine()
    DefaultScope.get_instance(f'bench-{os.getpid()}-{time.time()}', scope_name='mmpretrain')
    torch.manual_seed(spec['seed'])
    np.random.seed(spec['seed'])
    local_size = spec.get('local_size') or local_size_for(spec['img_size'])
    job = Job(dict(spec, local_size=local_size))
    model, batch, is_cuda = job.model, spec['batch'], job.device.type == 'cuda'
    out = dict(
        spec=spec,
        local_size=local_size,
        input_size=input_size(spec),
        device=str(job.device),
        threads=torch.get_num_threads(),
        build_s=round(job.build_s, 2),
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        trainable_params_m=sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    )
    extras = spec.get('extras', True)  # FLOPs, tokens and tensor peak: first repeat only
    gemm_dtype = torch.bfloat16 if is_cuda else torch.float32
    gemm_half_s = spec.get('gemm_seconds', 0) / 2
    gemm_before = (
        M.gemm_probe(job.device, gemm_dtype, spec['gemm_size'], gemm_half_s)
        if gemm_half_s > 0
        else None
    )

    # warm-up; the last warm-up step also counts FLOPs and tokens
    if is_cuda:
        torch.cuda.reset_peak_memory_stats()
        out['cuda_static_mb'] = torch.cuda.memory_allocated() / 2**20
    rss_before, hwm_reset = C.rss_bytes(), C.reset_peak_rss()
    out['ru_maxrss_before_steps_mb'] = C.ru_maxrss_bytes() / 2**20
    warm_times = job.timed(spec['warmup'] - 1) if extras else job.timed(spec['warmup'])
    flops = None
    if extras:
        t0 = time.perf_counter()
        counter = M.TokenCounter(model)
        flops, out['flops_by_op'] = M.count_flops(job.step)
        counter.remove()
        out['tokens'] = counter.per_image(batch)
        warm_times.append(time.perf_counter() - t0)

    sampler = C.CpuSampler().start()
    times = job.timed(spec['steps'])
    out['contention'] = sampler.stop()
    hwm = C.peak_rss_bytes() if hwm_reset else C.ru_maxrss_bytes()
    med = C.median(times)
    losses = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in job.log_vars.items()}
    out.update(
        warmup_times_s=warm_times,
        step_times_s=times,
        step_time_s=med,
        img_per_s=batch / med,
        losses=losses,
        losses_finite=all(np.isfinite(v) for v in losses.values()),
        flops_per_step=flops,
        gflops_per_img=flops / batch / 1e9 if flops else None,
        achieved_gflops=flops / med / 1e9 if flops else None,
        rss_before_mb=rss_before / 2**20,
        peak_rss_delta_mb=(hwm - rss_before) / 2**20,
        peak_rss_source='VmHWM (reset before step 1)' if hwm_reset else 'ru_maxrss',
        ru_maxrss_delta_mb=(C.ru_maxrss_bytes() - rss_before) / 2**20,
    )
    if is_cuda:
        out['cuda_max_allocated_mb'] = torch.cuda.max_memory_allocated() / 2**20
        out['cuda_dynamic_peak_mb'] = out['cuda_max_allocated_mb'] - out['cuda_static_mb']

    if spec.get('mem_tracker', True) and extras:  # one extra step under the tracker
        static = M.static_tensors(model, job.optim_wrapper.optimizer, job.data)
        with M.LiveTensorPeak(static) as tracker:
            job.step()
        out['tensor_static_mb'] = M.storage_bytes(static) / 2**20
        out['tensor_dynamic_peak_mb'] = tracker.peak / 2**20
        out['tensor_peak_mb'] = out['tensor_static_mb'] + out['tensor_dynamic_peak_mb']

    # GEMM probes before the warm-up and after the timed steps bracket the step's
    # conditions; the fraction uses their mean
    if gemm_before is not None:
        after = M.gemm_probe(job.device, gemm_dtype, spec['gemm_size'], gemm_half_s)
        mean = (gemm_before['gflops'] + after['gflops']) / 2
        out['gemm'] = dict(
            after,
            gflops=mean,
            gflops_before=gemm_before['gflops'],
            gflops_after=after['gflops'],
            seconds=gemm_before['seconds'] + after['seconds'],
        )
        out['gemm_fraction'] = out['achieved_gflops'] / mean if out['achieved_gflops'] else None
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit('usage: train_step_worker.py SPECS_JSON (a JSON list of job specs)')
    C.emit_result([run_job(spec) for spec in json.loads(argv[0])])
    return 0


if __name__ == '__main__':
    sys.exit(main())
