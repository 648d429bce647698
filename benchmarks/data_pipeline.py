#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA data-pipeline benchmark: samples/s per worker from JPEG tiles, and scaling.

Makes ``--num-images`` procedural remote-sensing JPEG tiles of ``--tile-size``
px (512 by default) with ``pera_mm.utils.generate_demo_dataset`` in a
temporary folder, then times the real PerA training pipeline taken from
``configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py``:
LoadRGBImageFromFile (JPEG decode) -> PerAMultiCropViews (2 global 448 px +
8 local 96 px aligned pairs, colour jitter) -> DisjointMaskGenerator
(0.2/0.2/0.6) -> PackInputs, plus ``default_collate`` per batch.

1. In one process, configured like a DataLoader worker (torch 1 thread,
   OpenCV threads as the runtime config sets them: ``opencv_num_threads=0``):
   per-stage milliseconds and samples/s. This is the per-worker rate.
2. Through ``torch.utils.data.DataLoader`` over ``UnlabeledImageDataset``
   with ``num_workers`` in ``--workers`` (default 0 1 2): samples/s in steady
   state (timed from the first batch on) and including worker start-up, and
   the scaling efficiency rate(n) / (n * rate(1)).

Examples::

    python benchmarks/data_pipeline.py --out work_dirs/bench/data_pipeline.json
    python benchmarks/data_pipeline.py --quick --out /tmp/dp.json
"""

import argparse
import copy
import sys
import tempfile
import time

import _common as C

PERA_CFG = 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        '--data-dir', default=None, help='tile folder to (re)use; default: a fresh temporary folder'
    )
    p.add_argument('--num-images', type=int, default=None, help='tiles to generate (64)')
    p.add_argument('--tile-size', type=int, default=512)
    p.add_argument('--global-size', type=int, default=448)
    p.add_argument('--local-size', type=int, default=96)
    p.add_argument('--num-global', type=int, default=2)
    p.add_argument('--num-local', type=int, default=8)
    p.add_argument('--samples', type=int, default=None, help='samples timed in-process (192)')
    p.add_argument('--workers', type=int, nargs='+', default=None, help='(0 1 2)')
    p.add_argument('--batch', type=int, default=None, help='DataLoader batch size (8)')
    p.add_argument(
        '--loader-batches', type=int, default=None, help='batches timed per DataLoader setting (24)'
    )
    p.add_argument(
        '--opencv-threads',
        type=int,
        default=0,
        help='cv2.setNumThreads in the measuring process (runtime config: 0)',
    )
    p.add_argument(
        '--target-rate',
        type=float,
        default=30.0,
        help='goal: samples/s per worker >= this (default 30.0)',
    )
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--wait-load', type=float, default=0.0)
    p.add_argument('--wait-deadline', default=None)
    p.add_argument(
        '--quick',
        action='store_true',
        help='smoke run: 8 tiles, 12 samples, workers 0 1 2 with 3 batches of 4',
    )
    p.add_argument('--out', default=None)
    return p


def resolve(args):
    quick = dict(num_images=8, samples=12, workers=[0, 1, 2], batch=4, loader_batches=3)
    full = dict(num_images=64, samples=192, workers=[0, 1, 2], batch=8, loader_batches=24)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


def pipeline_cfg(args):
    from mmengine.config import Config

    cfg = Config.fromfile(C.REPO / PERA_CFG)
    pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    for t in pipeline:
        if t['type'] == 'PerAMultiCropViews':
            t.update(
                global_crop_size=args.global_size,
                local_crop_size=args.local_size,
                num_global_crops=args.num_global,
                num_local_crops=args.num_local,
            )
    return [dict(t) for t in pipeline]


def time_in_process(paths, transforms, n, batch):
    """Per-stage time over ``n`` samples (cycling the tiles) + collate per batch."""
    from mmengine.dataset import default_collate

    names = [type(t).__name__ for t in transforms]
    stage = {k: 0.0 for k in names}
    for i in range(4):  # warm-up: imports, OpenCV/PIL first-call costs
        r = dict(img_path=str(paths[i % len(paths)]))
        for t in transforms:
            r = t(r)
    samples, collate_s = [], 0.0
    t_all = time.perf_counter()
    for i in range(n):
        r = dict(img_path=str(paths[i % len(paths)]))
        for name, t in zip(names, transforms):
            t0 = time.perf_counter()
            r = t(r)
            stage[name] += time.perf_counter() - t0
        samples.append(r)
        if len(samples) == batch:
            t0 = time.perf_counter()
            default_collate(samples)
            collate_s += time.perf_counter() - t0
            samples = []
    total = time.perf_counter() - t_all
    per_sample_ms = {k: 1000 * v / n for k, v in stage.items()}
    per_sample_ms['default_collate'] = 1000 * collate_s / n
    return dict(
        samples=n,
        seconds=total,
        samples_per_s=n / total,
        per_sample_ms=per_sample_ms,
        pipeline_only_samples_per_s=n / sum(stage.values()),
    )


def _seed_worker(worker_id):
    import numpy as np
    import torch

    np.random.seed((torch.initial_seed() + worker_id) % 2**32)


def time_loader(dataset, workers, batch, n_batches, seed):
    import torch
    from mmengine.dataset import default_collate

    n = batch * (n_batches + 1)  # the first batch is start-up
    indices = [i % len(dataset) for i in range(n)]
    g = torch.Generator()
    g.manual_seed(seed)
    sampler = C_sampler(indices)
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=default_collate,
        worker_init_fn=_seed_worker if workers else None,
        generator=g,
        persistent_workers=False,
        pin_memory=False,
    )
    sampler_cpu = C.CpuSampler().start()
    it = iter(loader)
    next(it)
    t_first = time.perf_counter()
    got = 0
    for b in it:
        got += len(b['data_samples'])
    t_end = time.perf_counter()
    del it, loader  # joins the workers, so their CPU time counts as ours
    cont = sampler_cpu.stop()
    return dict(
        num_workers=workers,
        batch=batch,
        batches=n_batches,
        steady_samples_per_s=got / (t_end - t_first),
        overall_samples_per_s=(got + batch) / (t_end - t0),
        first_batch_s=t_first - t0,
        contention=cont,
    )


class C_sampler:  # noqa: N801  (a minimal fixed-order sampler)
    def __init__(self, indices):
        self.indices = list(indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def main(argv=None):
    args = resolve(make_parser().parse_args(argv))
    gate = C.wait_for_quiet(args.wait_load, args.wait_deadline)

    import cv2
    import numpy as np
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS, TRANSFORMS

    import pera_mm  # noqa: F401
    from pera_mm.utils import generate_demo_dataset

    DefaultScope.get_instance(f'bench-data-{time.time()}', scope_name='mmpretrain')
    cv2.setNumThreads(args.opencv_threads)
    meta = C.machine_info()
    meta['load_gate'] = gate
    meta['opencv_threads_setting'] = args.opencv_threads
    print(
        f'{meta["cpu_model"]} | torch {meta.get("torch")} | cv2 {meta.get("cv2")} | '
        f'load {meta["loadavg_start"]}',
        flush=True,
    )

    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix='pera_bench_tiles_')
        data_dir = tmp.name
    t0 = time.perf_counter()
    paths = generate_demo_dataset(
        data_dir, num_images=args.num_images, size=args.tile_size, seed=args.seed
    )
    gen_s = time.perf_counter() - t0
    jpeg_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
    print(
        f'{len(paths)} JPEG tiles {args.tile_size}px (mean {jpeg_kb:.0f} KiB) '
        f'in {gen_s:.1f}s at {data_dir}',
        flush=True,
    )

    pipe_cfg = pipeline_cfg(args)
    np.random.seed(args.seed)
    # ---------------------------------------------------- in-process = 1 worker
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker gets
    transforms = [TRANSFORMS.build(copy.deepcopy(t)) for t in pipe_cfg]
    inproc = time_in_process(paths, transforms, args.samples, args.batch)
    torch.set_num_threads(threads_before)
    print(f'in-process (one worker): {inproc["samples_per_s"]:.1f} samples/s', flush=True)

    # ---------------------------------------------------------- DataLoader
    dataset = DATASETS.build(
        dict(type='UnlabeledImageDataset', data_root=data_dir, pipeline=copy.deepcopy(pipe_cfg))
    )
    loaders = []
    for w in args.workers:
        r = time_loader(dataset, w, args.batch, args.loader_batches, args.seed)
        loaders.append(r)
        print(
            f'DataLoader num_workers={w}: {r["steady_samples_per_s"]:.1f} samples/s '
            f'(first batch {r["first_batch_s"]:.2f}s)',
            flush=True,
        )
    rate1 = next((r['steady_samples_per_s'] for r in loaders if r['num_workers'] == 1), None)
    for r in loaders:
        w = r['num_workers']
        r['per_worker_samples_per_s'] = r['steady_samples_per_s'] / w if w else None
        r['speedup_vs_1_worker'] = r['steady_samples_per_s'] / rate1 if rate1 else None
        r['scaling_efficiency'] = r['steady_samples_per_s'] / (w * rate1) if (rate1 and w) else None

    per_worker = inproc['samples_per_s']
    goal = args.target_rate
    target = dict(
        per_worker_samples_per_s=per_worker,
        target=goal,
        met=per_worker >= goal,
        loader_1_worker_samples_per_s=rate1,
        loader_1_worker_met=bool(rate1 and rate1 >= goal),
    )
    meta['loadavg_end'] = C.loadavg()
    meta['args'] = vars(args)
    setup = dict(
        tile_size=args.tile_size,
        num_images=len(paths),
        mean_jpeg_kib=jpeg_kb,
        global_size=args.global_size,
        local_size=args.local_size,
        num_global=args.num_global,
        num_local=args.num_local,
        views_per_sample=2 * (args.num_global + args.num_local),
        pipeline=[t['type'] for t in pipe_cfg],
        generate_s=gen_s,
    )
    payload = dict(meta=meta, setup=setup, in_process=inproc, dataloader=loaders, target=target)

    print(
        '\nPer-sample cost, one process configured as a worker '
        f'({setup["views_per_sample"]} views: {args.num_global}x2 @ {args.global_size}px + '
        f'{args.num_local}x2 @ {args.local_size}px, from {args.tile_size}px JPEG)'
    )
    rows = [
        [k, v, 100 * v / sum(inproc['per_sample_ms'].values())]
        for k, v in inproc['per_sample_ms'].items()
    ]
    print(C.table(rows, ['stage', 'ms/sample', '%']))
    print(
        f'=> {inproc["samples_per_s"]:.1f} samples/s per worker '
        f'(target >= {goal:g}: {"met" if target["met"] else "MISSED"})'
    )
    print(
        '\nDataLoader (UnlabeledImageDataset, default_collate, batch '
        f'{args.batch}; steady = from the first batch on)'
    )
    rows = [
        [
            r['num_workers'],
            r['steady_samples_per_s'],
            r['overall_samples_per_s'],
            r['per_worker_samples_per_s'],
            r['speedup_vs_1_worker'],
            r['scaling_efficiency'],
            r['first_batch_s'],
            r['contention'].get('foreign_cores'),
        ]
        for r in loaders
    ]
    print(
        C.table(
            rows,
            [
                'workers',
                'samples/s',
                'incl. start',
                'per worker',
                'x vs 1',
                'efficiency',
                'first batch s',
                'other cpu',
            ],
        )
    )
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
