# Copyright (c) pera-mm contributors. All rights reserved.
"""Frozen-backbone and LoRA fine-tuning through tools/train.py and tools/test.py.

Real AID tiles (../shared/data/AID_150px, four classes by symlink), a PerA training
checkpoint made here, the frozen and LoRA CPU smoke configs for 2 iterations each; the
saved checkpoints reload in tools/test.py, the LoRA one also without the init
checkpoint and, merged by tools/model_converters/merge_lora.py, in the plain config.
"""

import json
import os
import re

import pytest
import torch

from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import read_latest_log

TOOLS = REPO_ROOT / 'tools'
CONFIGS = REPO_ROOT / 'configs' / 'scene_classification'
FROZEN = CONFIGS / 'pera_vit-tiny-p16_frozen-1xb8-6iter_aid-64px_cpu-smoke.py'
LORA = CONFIGS / 'pera_vit-tiny-p16_lora-1xb8-6iter_aid-64px_cpu-smoke.py'
PLAIN = CONFIGS / 'pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py'
CLASSES = ('Airport', 'Beach', 'Forest', 'Pond')
ITERS = 2
HEAD = 64 * len(CLASSES) + len(CLASSES)  # LinearClsHead on the 64-wide cls token
LORA_PARAMS = 4 * 8 * ((64 + 192) + (64 + 64))  # 4 blocks, rank 8, qkv and proj


def _options(data, init_key=None, ckpt=None):
    opts = [
        f'model.head.num_classes={len(CLASSES)}',
        f'data_preprocessor.num_classes={len(CLASSES)}',
        f'train_cfg.max_iters={ITERS}',
        f'train_cfg.val_interval={ITERS}',
        f'default_hooks.checkpoint.interval={ITERS}',
        'train_dataloader.batch_size=4',
        'param_scheduler.0.warmup=1',  # the smoke warm-up is 2 iterations
    ]
    if init_key is not None:
        opts.append(f'{init_key}={ckpt}')
    for loader, ann in (('train', 'train'), ('val', 'test'), ('test', 'test')):
        opts += [
            f'{loader}_dataloader.dataset.data_root={data}',
            f'{loader}_dataloader.dataset.data_prefix=images',
            f'{loader}_dataloader.dataset.ann_file=meta/split-20-80_seed0_{ann}.txt',
        ]
    return ['--cfg-options'] + opts


@pytest.fixture(scope='module')
def peft_data(tmp_path_factory, shared_path, load_script):
    aid = shared_path('AID_150px/AID')
    tmp = tmp_path_factory.mktemp('peft')
    images = tmp / 'data' / 'images'
    for name in CLASSES:
        (images / name).mkdir(parents=True)
        for f in sorted(os.listdir(aid / name)):
            (images / name / f).symlink_to(aid / name / f)
    split = load_script(TOOLS / 'dataset_converters' / 'split_scene_dataset.py')
    split.main([str(images), '--out-dir', str(tmp / 'data' / 'meta'), '--train-ratio', '0.2'])
    ckpt, teacher = make_pera_checkpoint(tmp / 'pera_tiny.pth')
    return dict(tmp=tmp, data=tmp / 'data', ckpt=ckpt, teacher=teacher)


def _train(load_script, config, work_dir, opts):
    load_script(TOOLS / 'train.py').main([str(config), '--work-dir', str(work_dir)] + opts)
    ckpt = work_dir / f'iter_{ITERS}.pth'
    return torch.load(ckpt, map_location='cpu', weights_only=True), ckpt, read_latest_log(work_dir)


def _test(load_script, config, ckpt, work_dir, opts):
    out = work_dir / 'metrics.json'
    args = [str(config), str(ckpt), '--work-dir', str(work_dir), '--out', str(out)]
    load_script(TOOLS / 'test.py').main(args + ['--out-item', 'metrics'] + opts)
    return json.loads(out.read_text())


def _counts(log):
    m = re.search(r'parameters: trainable ([\d,]+) of ([\d,]+) .*LoRA ([\d,]+);', log)
    assert m, 'no ParameterCountHook line in the log'
    return tuple(int(g.replace(',', '')) for g in m.groups())


@pytest.mark.needs_shared
def test_frozen_backbone_trains_the_head_only_and_reloads(peft_data, load_script):
    tmp, data = peft_data['tmp'], peft_data['data']
    key = 'model.backbone.init_cfg.checkpoint'
    ckpt, path, log = _train(
        load_script, FROZEN, tmp / 'frozen', _options(data, key, peft_data['ckpt'])
    )
    trainable, total, lora = _counts(log)
    assert (trainable, lora) == (HEAD, 0)
    assert total == HEAD + sum(v.numel() for v in peft_data['teacher'].values())
    for k, v in peft_data['teacher'].items():
        assert torch.equal(ckpt['state_dict'][f'backbone.{k}'], v), k
    metrics = _test(
        load_script, FROZEN, path, tmp / 'frozen_test', _options(data, key, '/nonexistent.pth')
    )
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


@pytest.mark.needs_shared
def test_lora_trains_lora_and_head_reloads_and_merges(peft_data, load_script):
    tmp, data = peft_data['tmp'], peft_data['data']
    key = 'model.backbone.module.init_cfg.checkpoint'
    ckpt, path, log = _train(
        load_script, LORA, tmp / 'lora', _options(data, key, peft_data['ckpt'])
    )
    trainable, total, lora = _counts(log)
    assert (trainable, lora) == (LORA_PARAMS + HEAD, LORA_PARAMS)
    assert total == LORA_PARAMS + HEAD + sum(v.numel() for v in peft_data['teacher'].values())
    state = ckpt['state_dict']
    # the frozen base weights are in the checkpoint and did not move; LoRA's B did
    for k, v in peft_data['teacher'].items():
        name = f'backbone.module.{k}'
        if name not in state:
            name = re.sub(r'\.(weight|bias)$', r'.original_layer.\1', name)
        assert torch.equal(state[name], v), k
    assert state['backbone.module.blocks.3.attn.qkv.lora_up.weight'].abs().sum() > 0
    # only LoRA and head tensors carry AdamW state
    assert len(ckpt['optimizer']['state']) == 16 + 2
    # tools/test.py: the checkpoint alone (the init checkpoint path does not exist)
    metrics = _test(
        load_script, LORA, path, tmp / 'lora_test', _options(data, key, '/nonexistent.pth')
    )
    # export: merged into the plain fine-tuning config's layout, the same accuracy
    merged = tmp / 'merged.pth'
    load_script(TOOLS / 'model_converters' / 'merge_lora.py').main([str(path), str(merged)])
    plain = _test(
        load_script,
        PLAIN,
        merged,
        tmp / 'merged_test',
        _options(data, 'model.backbone.init_cfg.checkpoint', '/nonexistent.pth'),
    )
    assert plain['accuracy/top1'] == pytest.approx(metrics['accuracy/top1'], abs=1e-6)
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    # --resume from the checkpoint alone (no init checkpoint: the runner initialises the
    # weights before resuming, so init_cfg=None): one more iteration, the base still the teacher
    resume = _options(data) + [
        'model.backbone.module.init_cfg=None',
        f'train_cfg.max_iters={ITERS + 1}',
        'default_hooks.checkpoint.interval=1',
    ]
    load_script(TOOLS / 'train.py').main(
        [str(LORA), '--work-dir', str(tmp / 'lora'), '--resume', str(path)] + resume
    )
    after = torch.load(
        tmp / 'lora' / f'iter_{ITERS + 1}.pth', map_location='cpu', weights_only=True
    )
    assert after['meta']['iter'] == ITERS + 1
    up = 'backbone.module.blocks.3.attn.qkv.lora_up.weight'
    assert not torch.equal(after['state_dict'][up], state[up])
    qkv = 'backbone.module.blocks.3.attn.qkv.original_layer.weight'
    assert torch.equal(after['state_dict'][qkv], peft_data['teacher']['blocks.3.attn.qkv.weight'])
