#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""Does PerA pretraining help? The teacher of a PerA checkpoint vs random init, on real data.

Two arms with the same architecture (``PerAViT``), recipe and budget:

- ``pretrained``: the backbone loads the TEACHER of ``--checkpoint`` through
  ``init_cfg=dict(type='Pretrained')``;
- ``random``: PerAViT's own initialisation.

Two protocols per task, ``linear`` (frozen backbone, the head alone trains) and
``finetune`` (everything trains), and two tasks, each on a fixed held-out split:

- scene classification on ``AID_150px`` (30 classes x 10 tiles; per class a
  seeded stratified split, ``--cls-train`` / ``--cls-test`` tiles), MMPretrain
  ``ImageClassifier`` at ``--img-size`` px (cls token + linear head), top-1;
- segmentation on the three LoveDA Rural tiles (1024 px, raw codes 0-7,
  0 = no data): train on random ``--img-size`` crops of the other tiles
  resized to ``--seg-scale`` px, test on tile ``--seg-test-tile`` (slide
  inference at ``--seg-scale``, scored against its full-resolution mask),
  MMSeg ``EncoderDecoder`` with a linear head on the stride-16 feature map, mIoU.

Every (task, protocol, arm) runs for each of ``--seeds`` (seed = weight init of
the head / random backbone, data order and augmentation; the split is fixed by
``--split-seed``). The script prints mean ± std per arm, the paired
differences (pretrained - random, seed by seed) and the ratio of the means,
and writes every per-seed number to ``--out``. ``--arms`` runs one arm only and
``--reuse`` merges the runs of earlier calls with the same setting (e.g. the
random arm while the pretraining still runs; see docs/pretraining_helps.md).

Examples::

    python tools/train.py \\
        configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py \\
        --work-dir work_dirs/pera_aid_unlabeled
    python benchmarks/pretrained_vs_random.py \\
        --checkpoint work_dirs/pera_aid_unlabeled/epoch_4.pth \\
        --out benchmarks/results/pretrained_vs_random.json
"""

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import loadavg, machine_info, table, write_json  # noqa: E402
from _transfer_configs import PROTOCOLS, build_cls_cfg, build_seg_cfg  # noqa: E402

ARMS = ('pretrained', 'random')
TASK_METRIC = {'cls': 'accuracy/top1', 'seg': 'mIoU'}
IMG_EXTS = ('.jpg', '.jpeg', '.png', '.tif', '.bmp')


def parse_args(argv=None):
    from pera_mm.testing import shared_data_root

    data = shared_data_root()
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        '--checkpoint', help='PerA training checkpoint (teacher used); needed by the pretrained arm'
    )
    p.add_argument(
        '--arms',
        nargs='*',
        choices=ARMS,
        default=list(ARMS),
        help='arms to run in this call (none: only merge the --reuse files)',
    )
    p.add_argument(
        '--reuse',
        nargs='+',
        default=[],
        help='JSON files of earlier calls with the same setting: the runs of the arms not in '
        "--arms are taken from them (a run's metric does not depend on the order of the runs)",
    )
    p.add_argument(
        '--arch',
        default='tiny',
        help='PerAViT arch name, or a JSON dict (embed_dims, num_layers, num_heads, '
        'feedforward_channels); must match the checkpoint',
    )
    p.add_argument('--img-size', type=int, default=96, help='input / crop size (px)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--tasks', nargs='+', choices=('cls', 'seg'), default=['cls', 'seg'])
    p.add_argument('--protocols', nargs='+', choices=tuple(PROTOCOLS), default=list(PROTOCOLS))
    p.add_argument('--cls-root', default=str(data / 'AID_150px' / 'AID'))
    p.add_argument('--cls-train', type=int, default=5, help='training tiles per class')
    p.add_argument('--cls-test', type=int, default=5, help='test tiles per class')
    p.add_argument('--split-seed', type=int, default=0)
    p.add_argument('--cls-iters', type=int, default=100)
    p.add_argument('--cls-batch', type=int, default=16)
    p.add_argument('--seg-root', default=str(data / 'LoveDA' / 'Train' / 'Rural'))
    p.add_argument('--seg-test-tile', default='1', help='stem of the held-out LoveDA tile')
    p.add_argument('--seg-scale', type=int, default=256, help='tiles resized to this (px)')
    p.add_argument('--seg-iters', type=int, default=100)
    p.add_argument('--seg-batch', type=int, default=8)
    p.add_argument(
        '--threads', type=int, default=None, help='torch intra-op threads (default: torch default)'
    )
    p.add_argument('--work-dir', default=None, help='run folders (default: a temp dir)')
    p.add_argument('--out', default='benchmarks/results/pretrained_vs_random.json')
    return p.parse_args(argv)


def parse_arch(text):
    """The ``--arch`` value: an arch name, or a JSON dict; with its depth and width."""
    from pera_mm.models.backbones.pera_vit import PerAViT
    from pera_mm.utils.errors import PeraConfigError

    if text.lstrip().startswith('{'):
        arch = json.loads(text)
        settings = arch
    elif text in PerAViT.arch_zoo:
        arch, settings = text, PerAViT.arch_zoo[text]
    else:
        raise PeraConfigError(
            f'--arch: expected one of {sorted(PerAViT.arch_zoo)} or a JSON dict, got {text!r}'
        )
    return arch, settings['num_layers'], settings['embed_dims']


# ------------------------------------------------------------------ data splits
def stratified_split(root: Path, n_train: int, n_test: int, seed: int, out_dir: Path):
    """Per-class seeded split of a class-folder tree, written as MMPretrain ann files."""
    from pera_mm.utils.errors import PeraDataError, PeraFileNotFoundError

    if not root.is_dir():
        raise PeraFileNotFoundError(f'--cls-root {root}: no such folder')
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise PeraDataError(f'--cls-root {root}: no class folders')
    rng = random.Random(seed)
    lines = {'train': [], 'test': []}
    for label, cls in enumerate(classes):
        files = sorted(f.name for f in (root / cls).iterdir() if f.suffix.lower() in IMG_EXTS)
        if len(files) < n_train + n_test:
            raise PeraDataError(
                f'{root / cls}: {len(files)} images, the split needs '
                f'{n_train} + {n_test} (--cls-train / --cls-test)'
            )
        rng.shuffle(files)
        lines['train'] += [f'{cls}/{f} {label}' for f in files[:n_train]]
        lines['test'] += [f'{cls}/{f} {label}' for f in files[n_train : n_train + n_test]]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, rows in lines.items():
        paths[part] = out_dir / f'cls_{part}.txt'
        paths[part].write_text('\n'.join(rows) + '\n')
    return classes, paths, lines


def seg_split(root: Path, test_stem: str, scale: int, out_dir: Path):
    """Resize the training tiles once into ``out_dir``; the index of the test tile."""
    import mmcv
    import numpy as np

    from pera_mm.utils.errors import PeraDataError, PeraFileNotFoundError

    img_dir, ann_dir = root / 'images_png', root / 'masks_png'
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            raise PeraFileNotFoundError(f'--seg-root: {d}: no such folder')
    stems = sorted(p.stem for p in img_dir.glob('*.png'))
    if test_stem not in stems or len(stems) < 2:
        raise PeraDataError(
            f'--seg-test-tile {test_stem!r}: expected one of {stems} (and >= 2 tiles)'
        )
    train = [s for s in stems if s != test_stem]
    (out_dir / 'images_png').mkdir(parents=True, exist_ok=True)
    (out_dir / 'masks_png').mkdir(parents=True, exist_ok=True)
    counts = {}
    for stem in stems:
        mask = mmcv.imread(str(ann_dir / f'{stem}.png'), flag='unchanged')
        counts[stem] = np.bincount(mask.ravel(), minlength=8).tolist()
        if stem == test_stem:
            continue
        img = mmcv.imread(str(img_dir / f'{stem}.png'))
        if img.shape[:2] != mask.shape[:2]:
            raise PeraDataError(
                f'{ann_dir / stem}.png: mask {mask.shape[:2]} differs from image {img.shape[:2]}'
            )
        mmcv.imwrite(
            mmcv.imresize(img, (scale, scale), interpolation='bilinear'),
            str(out_dir / 'images_png' / f'{stem}.png'),
        )
        mmcv.imwrite(
            mmcv.imresize(mask, (scale, scale), interpolation='nearest'),
            str(out_dir / 'masks_png' / f'{stem}.png'),
        )
    return train, stems.index(test_stem), counts


# ------------------------------------------------------------------------ runs
def teacher_max_abs_diff(model_backbone, checkpoint: str) -> float:
    """Largest |backbone - checkpoint teacher| over the tensors of equal shape."""
    from pera_mm.utils.backbone_checkpoint import read_checkpoint_file

    prefix = 'teacher.backbone.'
    state = read_checkpoint_file(checkpoint)
    own = model_backbone.state_dict()
    diffs = [
        (own[k[len(prefix) :]].float() - v.float()).abs().max().item()
        for k, v in state.items()
        if k.startswith(prefix)
        and k[len(prefix) :] in own
        and own[k[len(prefix) :]].shape == v.shape
    ]
    return max(diffs) if diffs else float('nan')


def run_one(cfg_dict: dict, metric: str, checkpoint: str) -> dict:
    """Train and test one config; the metric, losses, time and the teacher check."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    start = time.perf_counter()
    runner = Runner.from_cfg(Config(cfg_dict))
    runner.train()
    train_s = time.perf_counter() - start
    metrics = runner.test()
    losses = list(runner.message_hub.get_scalar('train/loss').data[0])
    k = max(1, min(5, len(losses) // 4))
    out = dict(
        metric=float(metrics[metric]),
        metrics={key: float(v) for key, v in metrics.items()},
        loss_first=sum(losses[:k]) / k,
        loss_last=sum(losses[-k:]) / k,
        train_seconds=round(train_s, 2),
        total_seconds=round(time.perf_counter() - start, 2),
        backbone_vs_teacher_max_abs=(
            teacher_max_abs_diff(runner.model.backbone, checkpoint) if checkpoint else None
        ),
    )
    del runner
    gc.collect()
    return out


def check_reusable(old: dict, new: dict) -> None:
    """Raise unless an earlier call's setting equals this one (in the keys both have)."""
    from pera_mm.utils.errors import PeraConfigError

    for key in sorted(set(old) & set(new)):
        if key == 'checkpoint' and None in (old[key], new[key]):
            continue  # a random-arm-only call names no checkpoint
        if old[key] != new[key]:
            raise PeraConfigError(
                f'--reuse: the earlier setting differs in {key!r}: {old.get(key)!r} vs '
                f'{new.get(key)!r}'
            )


def summarise(per_arm: dict) -> dict:
    """Mean ± std per arm, paired differences and the ratio of the means."""

    def stats(xs):
        return dict(
            mean=statistics.fmean(xs), std=statistics.stdev(xs) if len(xs) > 1 else 0.0, n=len(xs)
        )

    pre = [r['metric'] for r in per_arm['pretrained']]
    rnd = [r['metric'] for r in per_arm['random']]
    diffs = [a - b for a, b in zip(pre, rnd)]
    out = dict(pretrained=stats(pre), random=stats(rnd), difference=stats(diffs))
    out['ratio'] = (
        out['pretrained']['mean'] / out['random']['mean'] if out['random']['mean'] else None
    )
    out['seeds_pretrained_better'] = sum(d > 0 for d in diffs)
    return out


def main(argv=None):
    args = parse_args(argv)
    import pera_mm  # noqa: F401 (registers the modules)
    from pera_mm.utils.errors import PeraConfigError, PeraFileNotFoundError

    arch, num_layers, embed_dims = parse_arch(args.arch)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if 'pretrained' in args.arms and not args.checkpoint:
        raise PeraConfigError('--checkpoint: the pretrained arm needs a PerA checkpoint')
    checkpoint = str(Path(args.checkpoint).resolve()) if args.checkpoint else None
    reused = []
    for path in args.reuse:
        if not Path(path).is_file():
            raise PeraFileNotFoundError(f'--reuse {path}: no such file')
        reused.append(json.loads(Path(path).read_text()))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix='pera_pvr_')).resolve()
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    setting = dict(
        checkpoint=checkpoint,
        arch=arch,
        img_size=args.img_size,
        seeds=args.seeds,
        protocols={p: PROTOCOLS[p] for p in args.protocols},
        split_seed=args.split_seed,
    )
    common = dict(arch=arch, num_layers=num_layers, embed_dims=embed_dims, img_size=args.img_size)
    jobs = []  # (task, protocol, arm, seed, cfg builder kwargs)
    if 'cls' in args.tasks:
        classes, ann, lines = stratified_split(
            Path(args.cls_root), args.cls_train, args.cls_test, args.split_seed, work / 'splits'
        )
        setting['cls'] = dict(
            root=args.cls_root,
            classes=len(classes),
            train_per_class=args.cls_train,
            test_per_class=args.cls_test,
            train_images=len(lines['train']),
            test_images=len(lines['test']),
            test_files=[row.split()[0] for row in lines['test']],
            iters=args.cls_iters,
            batch_size=args.cls_batch,
        )
        cls_kw = dict(
            data_prefix=str(Path(args.cls_root).resolve()),
            train_ann=str(ann['train']),
            test_ann=str(ann['test']),
            classes=classes,
            iters=args.cls_iters,
            batch_size=args.cls_batch,
        )
        jobs.append(('cls', build_cls_cfg, cls_kw))
    if 'seg' in args.tasks:
        train_tiles, test_index, counts = seg_split(
            Path(args.seg_root), args.seg_test_tile, args.seg_scale, work / 'seg_train'
        )
        setting['seg'] = dict(
            root=args.seg_root,
            train_tiles=train_tiles,
            test_tile=args.seg_test_tile,
            pixel_counts_per_raw_code=counts,
            scale=args.seg_scale,
            crop=args.img_size,
            iters=args.seg_iters,
            batch_size=args.seg_batch,
        )
        seg_kw = dict(
            train_root=str(work / 'seg_train'),
            test_root=str(Path(args.seg_root).resolve()),
            test_indices=[test_index],
            scale=args.seg_scale,
            iters=args.seg_iters,
            batch_size=args.seg_batch,
        )
        jobs.append(('seg', build_seg_cfg, seg_kw))

    for old in reused:
        check_reusable(old['setting'], setting)
    runs = {}
    for task, builder, kw in jobs:
        for protocol in args.protocols:
            per_arm = {arm: [] for arm in ARMS}
            for arm in ARMS:
                for old in reused:
                    earlier = old['results'].get(task, {}).get(protocol, {}).get('runs', {})
                    if arm not in args.arms and earlier.get(arm) and not per_arm[arm]:
                        per_arm[arm] = earlier[arm]
            for seed in args.seeds:
                for arm in args.arms:  # interleaved, so machine load hits both arms alike
                    name = f'{task}_{protocol}_{arm}_s{seed}'
                    cfg = builder(
                        protocol=protocol,
                        seed=seed,
                        checkpoint=checkpoint if arm == 'pretrained' else None,
                        work_dir=str(work / name),
                        name=name,
                        **common,
                        **kw,
                    )
                    print(f'[pvr] {name}: start {time.strftime("%H:%M:%S")}', flush=True)
                    res = run_one(cfg, TASK_METRIC[task], checkpoint)
                    res['seed'] = seed
                    per_arm[arm].append(res)
                    print(
                        f'[pvr] {name}: {TASK_METRIC[task]} {res["metric"]:.2f}  loss '
                        f'{res["loss_first"]:.3f} -> {res["loss_last"]:.3f}  '
                        f'{res["total_seconds"]:.0f} s  |backbone - teacher| '
                        f'{res["backbone_vs_teacher_max_abs"]}',
                        flush=True,
                    )
            entry = dict(metric=TASK_METRIC[task], runs=per_arm)
            if all(per_arm[arm] for arm in ARMS):
                entry['summary'] = summarise(per_arm)
            runs.setdefault(task, {})[protocol] = entry

    rows = []
    for task, by_protocol in runs.items():
        for protocol, entry in by_protocol.items():
            if 'summary' not in entry:
                continue
            s = entry['summary']
            rows.append(
                [
                    task,
                    protocol,
                    entry['metric'],
                    f'{s["pretrained"]["mean"]:.2f} ± {s["pretrained"]["std"]:.2f}',
                    f'{s["random"]["mean"]:.2f} ± {s["random"]["std"]:.2f}',
                    f'{s["difference"]["mean"]:+.2f} ± {s["difference"]["std"]:.2f}',
                    f'{s["ratio"]:.3f}' if s['ratio'] is not None else 'n/a',
                    f'{s["seeds_pretrained_better"]}/{s["difference"]["n"]}',
                ]
            )
    header = [
        'task',
        'protocol',
        'metric',
        'pretrained',
        'random',
        'pre - rnd (paired)',
        'ratio',
        'seeds pre > rnd',
    ]
    print(table(rows, header))
    info['loadavg_end'] = loadavg()
    payload = dict(machine=info, setting=setting, results=runs, work_dir=str(work))
    write_json(args.out, payload)
    print(f'[pvr] wrote {args.out}')
    return payload


if __name__ == '__main__':
    from pera_mm.utils.cli import PeraCliErrors

    PeraCliErrors.run(main, tool='pretrained_vs_random.py')
