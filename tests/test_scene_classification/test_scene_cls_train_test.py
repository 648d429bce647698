# Copyright (c) pera-mm contributors. All rights reserved.
"""Scene classification end to end: split tool -> tools/train.py -> tools/test.py.

Real AID tiles (../shared/data/AID_150px, four classes by symlink) plus a .tif and an
off-size image made here; a PerA training checkpoint made here; the CPU smoke configs.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import read_latest_log, run_tool
from pera_mm.utils import setup_torch_load_compat

setup_torch_load_compat()

TOOLS = REPO_ROOT / 'tools'
CONFIGS = REPO_ROOT / 'configs' / 'scene_classification'
FT_SMOKE = CONFIGS / 'pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py'
LINEAR_SMOKE = CONFIGS / 'pera_vit-tiny-p16_linear-1xb8-6iter_aid-64px_cpu-smoke.py'
CLASSES = ('Airport', 'Beach', 'Forest', 'Pond')
TRAIN_ITERS = 8


def _run(args, cwd):
    return run_tool(args, cwd, OMP_NUM_THREADS='2')


def _data_options(data, ckpt, train_ann, ckpt_interval=TRAIN_ITERS):
    """--cfg-options pointing a smoke config at the test's data and checkpoint."""
    opts = [
        f'model.backbone.init_cfg.checkpoint={ckpt}',
        f'model.head.num_classes={len(CLASSES)}',
        f'data_preprocessor.num_classes={len(CLASSES)}',
        f'train_cfg.max_iters={TRAIN_ITERS}',
        f'train_cfg.val_interval={TRAIN_ITERS}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.checkpoint.max_keep_ckpts=2',
    ]
    test_ann = 'meta/split-20-80_seed0_test.txt'
    for loader, ann in (('train', train_ann), ('val', test_ann), ('test', test_ann)):
        opts += [
            f'{loader}_dataloader.dataset.data_root={data}',
            f'{loader}_dataloader.dataset.data_prefix=images',
            f'{loader}_dataloader.dataset.ann_file={ann}',
        ]
    return ['--cfg-options'] + opts


@pytest.fixture(scope='module')
def scene_run(tmp_path_factory, shared_path, load_script):
    """Split 4 real AID classes (+ .tif + off-size image), fine-tune 8 iterations."""
    aid = shared_path('AID_150px/AID')
    tmp = tmp_path_factory.mktemp('scene')
    images = tmp / 'data' / 'images'
    for name in CLASSES:
        (images / name).mkdir(parents=True)
        for f in sorted(os.listdir(aid / name)):
            (images / name / f).symlink_to(aid / name / f)
    first = sorted((aid / CLASSES[0]).iterdir())[0]
    Image.open(first).save(images / CLASSES[0] / 'made_here.tif')
    Image.open(sorted((aid / CLASSES[1]).iterdir())[0]).resize((150, 141)).save(
        images / CLASSES[1] / 'off_size_150x141.png'
    )
    split = load_script(TOOLS / 'dataset_converters' / 'split_scene_dataset.py')
    split.main([str(images), '--out-dir', str(tmp / 'data' / 'meta'), '--train-ratio', '0.2'])
    # the fixed training subset: the .tif, the off-size image and 6 of the split's
    # training images (2 per class), so that 8 iterations on it can lower the loss
    train = (tmp / 'data' / 'meta' / 'split-20-80_seed0_train.txt').read_text().splitlines()
    subset = [f'{CLASSES[0]}/made_here.tif 0', f'{CLASSES[1]}/off_size_150x141.png 1']
    subset += [line for line in train if line not in subset][:6]
    (tmp / 'data' / 'meta' / 'subset_train.txt').write_text('\n'.join(subset) + '\n')
    ckpt, teacher = make_pera_checkpoint(tmp / 'pera_tiny.pth')
    work_dir = tmp / 'ft'
    _run(
        [sys.executable, str(TOOLS / 'train.py'), str(FT_SMOKE), '--work-dir', str(work_dir)]
        + ['--no-validate']  # tools/test.py evaluates below
        + _data_options(tmp / 'data', ckpt, 'meta/subset_train.txt'),
        cwd=tmp,
    )
    return dict(
        tmp=tmp, ckpt=ckpt, teacher=teacher, work_dir=work_dir, log=read_latest_log(work_dir)
    )


def _dumped_config(work_dir, config):
    return Config.fromfile(str(Path(work_dir) / Path(config).name))


def _losses(ckpt):
    """The per-iteration training losses (the log shows a moving average)."""
    return [float(v) for v in ckpt['message_hub']['log_scalars']['train/loss'].data[0]]


@pytest.mark.needs_shared
def test_fine_tune_loads_teacher_and_lowers_the_loss(scene_run):
    log = scene_run['log']
    # every ViT tensor of the backbone came from the checkpoint's teacher
    assert re.search(
        r'PerAViT: loaded \d+ ViT tensors from .*pera_tiny\.pth \(pera layout, teacher\); '
        r'missing \(kept initialisation\): 0 non-ViT tensor\(s\)',
        log,
    )
    from mmpretrain.registry import MODELS

    cfg = _dumped_config(scene_run['work_dir'], FT_SMOKE)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.backbone.state_dict()
    teacher = scene_run['teacher']
    assert set(state) == set(teacher)
    for key, value in teacher.items():
        assert torch.equal(state[key], value), key
    # loss decreasing over the 8 iterations on the fixed subset
    ckpt = torch.load(
        scene_run['work_dir'] / f'iter_{TRAIN_ITERS}.pth', map_location='cpu', weights_only=True
    )
    losses = _losses(ckpt)
    assert len(losses) == TRAIN_ITERS
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.01, losses
    assert 'layer-wise lr decay: rate 0.75, 6 backbone depths' in log


@pytest.mark.needs_shared
def test_test_py_accuracy_equals_in_process_evaluation(scene_run):
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS
    from torch.utils.data import DataLoader

    tmp, work_dir = scene_run['tmp'], scene_run['work_dir']
    ckpt = work_dir / f'iter_{TRAIN_ITERS}.pth'
    out = tmp / 'metrics.json'
    config = work_dir / FT_SMOKE.name  # the dumped config: data paths already set
    _run(
        [
            sys.executable,
            str(TOOLS / 'test.py'),
            str(config),
            str(ckpt),
            '--work-dir',
            str(tmp / 'test_work'),
            '--out',
            str(out),
            '--out-item',
            'metrics',
        ],
        cwd=tmp,
    )
    metrics = json.loads(out.read_text())
    # in process: the same checkpoint on the same test split, accuracy counted by hand
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(ckpt), map_location='cpu')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    loader = DataLoader(dataset, batch_size=5, collate_fn=lambda batch: batch)
    correct = total = 0
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(
                dict(
                    inputs=[b['inputs'] for b in batch],
                    data_samples=[b['data_samples'] for b in batch],
                ),
                False,
            )
            logits = model(data['inputs'], mode='tensor')
            gt = torch.cat([s.gt_label for s in data['data_samples']])
            correct += int((logits.argmax(dim=1) == gt).sum())
            total += len(gt)
    test_lines = (tmp / 'data' / 'meta' / 'split-20-80_seed0_test.txt').read_text().splitlines()
    assert total == len(test_lines) == 9 + 9 + 8 + 8  # 11, 11, 10, 10 images, 2 per class train
    assert metrics['accuracy/top1'] == pytest.approx(100.0 * correct / total, abs=1e-4)


@pytest.mark.needs_shared
def test_linear_probe_keeps_the_backbone_frozen(scene_run, load_script):
    tmp = scene_run['tmp']
    work_dir = tmp / 'linear'
    train = load_script(TOOLS / 'train.py')  # in process: one interpreter start less
    train.main(
        [str(LINEAR_SMOKE), '--work-dir', str(work_dir), '--no-validate']
        + _data_options(tmp / 'data', scene_run['ckpt'], 'meta/subset_train.txt', 4)
    )
    half, last = (
        torch.load(work_dir / f'iter_{i}.pth', map_location='cpu', weights_only=True)
        for i in (TRAIN_ITERS // 2, TRAIN_ITERS)
    )
    # after 4 and after 8 SGD steps the ViT is bitwise the teacher; the head moved
    for key, value in scene_run['teacher'].items():
        assert torch.equal(half['state_dict'][f'backbone.{key}'], value), key
        assert torch.equal(last['state_dict'][f'backbone.{key}'], value), key
    assert last['state_dict']['head.fc.weight'].shape == (len(CLASSES), 64)
    assert not torch.equal(
        half['state_dict']['head.fc.weight'], last['state_dict']['head.fc.weight']
    )
    # only the head's two tensors have optimizer state (the frozen ones get no gradient)
    momentum = [s for s in last['optimizer']['state'].values() if 'momentum_buffer' in s]
    assert len(momentum) == 2
    log = read_latest_log(work_dir)
    assert 'missing (kept initialisation): 0 non-ViT tensor(s)' in log
    losses = _losses(last)
    assert len(losses) == TRAIN_ITERS and all(torch.isfinite(torch.tensor(losses)))
