# Copyright (c) pera-mm contributors. All rights reserved.
"""Frozen-ViT and LoRA fine-tuning of the Potsdam ViT-Adapter through the stock tools.

The real Potsdam sample (../shared/data/ISPRS/Potsdam_mmseg), a PerA checkpoint made
here, the frozen and LoRA CPU smoke configs for 2 iterations; the checkpoints reload in
tools/test.py without the init checkpoint, and the merged LoRA checkpoint gives the same
metrics in the plain smoke config.
"""

import re

import pytest
import torch

from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import LOADERS, read_latest_log

TOOLS = REPO_ROOT / 'tools'
SEG = REPO_ROOT / 'configs/segmentation'
STEM = 'upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64'
PLAIN, FROZEN, LORA = (SEG / f'{STEM}{v}_cpu-smoke.py' for v in ('', '_frozen', '_lora'))
ITERS = 2
LORA_PARAMS = 4 * 8 * ((64 + 192) + (64 + 64))


@pytest.fixture(scope='module')
def potsdam(tmp_path_factory, shared_path):
    src = shared_path('ISPRS/Potsdam_mmseg')
    root = tmp_path_factory.mktemp('peft_seg')
    for split in ('train', 'val'):
        for sub in ('img_dir', 'ann_dir'):
            dst = root / 'data' / sub / split
            dst.mkdir(parents=True)
            for f in sorted((src / sub).glob('*.png')):
                (dst / f.name).symlink_to(f)
    ckpt, teacher = make_pera_checkpoint(root / 'pera_tiny_64px.pth')
    return dict(root=root, data=root / 'data', ckpt=ckpt, teacher=teacher)


def _opts(data, init_key, ckpt):
    opts = [f'{loader}.dataset.data_root={data}' for loader in LOADERS]
    opts += [f'{init_key}={ckpt}', f'train_cfg.max_iters={ITERS}']
    return ['--cfg-options', *opts, f'default_hooks.checkpoint.interval={ITERS}']


def _trainable(log):
    m = re.search(r'parameters: trainable ([\d,]+) of ([\d,]+) .*LoRA ([\d,]+);', log)
    assert m, 'no ParameterCountHook line in the log'
    return tuple(int(g.replace(',', '')) for g in m.groups())


def _run(load_script, config, potsdam, init_key, name):
    work = potsdam['root'] / name
    train = load_script(TOOLS / 'train.py')
    train.main(
        [str(config), '--work-dir', str(work), '--no-validate']
        + _opts(potsdam['data'], init_key, potsdam['ckpt'])
    )
    ckpt = work / f'iter_{ITERS}.pth'
    test = load_script(TOOLS / 'test.py')
    metrics = test.main(
        [str(config), str(ckpt), '--work-dir', str(work / 'test')]
        + _opts(potsdam['data'], init_key, '/nonexistent.pth')
    )
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    return state, ckpt, metrics, _trainable(read_latest_log(work))


@pytest.mark.needs_shared
def test_frozen_vit_adapter_trains_adapter_and_heads(potsdam, load_script):
    state, _, metrics, (trainable, total, lora) = _run(
        load_script, FROZEN, potsdam, 'model.backbone.init_cfg.checkpoint', 'frozen'
    )
    vit = {k: v for k, v in potsdam['teacher'].items() if f'backbone.{k}' in state}
    assert len(vit) == 1 + 2 + 4 * 12  # pos embed, patch embed, 4 blocks
    for k, v in vit.items():
        assert torch.equal(state[f'backbone.{k}'], v), k
    assert lora == 0 and trainable == total - sum(v.numel() for v in vit.values())
    assert 0.0 <= metrics['mIoU'] <= 100.0 and 'mF1' in metrics


@pytest.mark.needs_shared
def test_lora_vit_adapter_reloads_and_merges(potsdam, load_script, tmp_path):
    key = 'model.backbone.module.init_cfg.checkpoint'
    state, ckpt, metrics, (trainable, total, lora) = _run(load_script, LORA, potsdam, key, 'lora')
    vit_numel = 0
    for k, v in potsdam['teacher'].items():
        name = f'backbone.module.{k}'
        if name not in state:
            name = re.sub(r'\.(weight|bias)$', r'.original_layer.\1', name)
        if name in state:  # the adapter has no cls token and final norm
            assert torch.equal(state[name], v), k
            vit_numel += v.numel()
    assert lora == LORA_PARAMS and trainable == total - vit_numel
    assert state['backbone.module.blocks.0.attn.proj.lora_up.weight'].abs().sum() > 0
    merged = tmp_path / 'merged.pth'
    load_script(TOOLS / 'model_converters' / 'merge_lora.py').main([str(ckpt), str(merged)])
    test = load_script(TOOLS / 'test.py')
    plain = test.main(
        [str(PLAIN), str(merged), '--work-dir', str(tmp_path / 'test')]
        + _opts(potsdam['data'], 'model.backbone.init_cfg.checkpoint', '/nonexistent.pth')
    )
    for name in ('mIoU', 'mF1', 'aAcc'):
        assert plain[name] == pytest.approx(metrics[name], abs=1e-6), name
