# Copyright (c) pera-mm contributors. All rights reserved.
"""UperNet + ViT-Adapter from converted DINOv3 weights through the stock tools.

timm's DINOv3 port (``vit_small_patch16_dinov3``, its q/v-bias form, at the smoke
configs' width: 64 wide, 4 blocks, one 64-wide head; built offline with
``pretrained=False`` and random O(1) LayerScale / norms / biases / tokens) is saved as
``.safetensors``, converted by ``tools/model_converters/public_weights_to_pera.py``
and trained for 2 iterations on the real Potsdam sample by ``tools/train.py``, with
the adapter's DINOv3 options (4 registers, q/v bias, RoPE, no position table,
LayerScale, eps 1e-5) given by ``--cfg-options``: in full fine-tuning (the plain smoke
config) and in LoRA (the LoRA smoke config, LoRA on ``qkv`` of the q/v-bias attention).
"""

import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import LOADERS, read_latest_log, read_scalars

from .public_weights_helpers import random_timm_model

SEG = REPO_ROOT / 'configs/segmentation'
STEM = 'upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64'
CONFIGS = {
    'full': (SEG / f'{STEM}_cpu-smoke.py', 'model.backbone'),
    'lora': (SEG / f'{STEM}_lora_cpu-smoke.py', 'model.backbone.module'),
}
CONVERT = REPO_ROOT / 'tools/model_converters/public_weights_to_pera.py'
ITERS = 2


@pytest.fixture(scope='module')
def dinov3(tmp_path_factory, shared_path):
    src = shared_path('ISPRS/Potsdam_mmseg')
    root = tmp_path_factory.mktemp('seg_dinov3')
    for split in ('train', 'val'):
        for sub in ('img_dir', 'ann_dir'):
            dst = root / 'data' / sub / split
            dst.mkdir(parents=True)
            for f in sorted((src / sub).glob('*.png')):
                (dst / f.name).symlink_to(f)
    model = random_timm_model(
        'vit_small_patch16_dinov3', img_size=64, embed_dim=64, depth=4, num_heads=1, qkv_bias=True
    )
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, root / 'model.safetensors'
    )
    dst = root / 'dinov3_tiny_pera.pth'
    proc = subprocess.run(
        [
            sys.executable,
            str(CONVERT),
            str(root / 'model.safetensors'),
            str(dst),
            '--layout',
            'timm',
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    converted = torch.load(dst, map_location='cpu', weights_only=True)
    return dict(root=root, data=root / 'data', ckpt=dst, **converted)


def _options(prefix, meta, ckpt, data):
    """--cfg-options: the converter's meta['pera_vit'] as adapter arguments, data, iterations."""
    assert meta['rope'] == dict(base=100.0, rescale_coords=2)
    vit = {
        'arch.num_heads': meta['arch']['num_heads'],
        'arch.feedforward_channels': meta['arch']['feedforward_channels'],
        'layer_scale_init_value': meta['layer_scale_init_value'],
        'qkv_bias': meta['qkv_bias'],
        'num_register_tokens': meta['num_register_tokens'],
        'norm_eps': meta['norm_eps'],
        'pos_embed_layout': meta['pos_embed_layout'],
        'rope.base': meta['rope']['base'],
        'rope.rescale_coords': meta['rope']['rescale_coords'],
        'init_cfg.checkpoint': ckpt,
    }
    opts = [f'{prefix}.{k}={v}' for k, v in vit.items()]
    opts += [f'{loader}.dataset.data_root={data}' for loader in LOADERS]
    opts += [f'train_cfg.max_iters={ITERS}', f'default_hooks.checkpoint.interval={ITERS}']
    return ['--cfg-options', *opts]


@pytest.mark.needs_shared
@pytest.mark.parametrize('variant', list(CONFIGS))
def test_adapter_trains_from_converted_dinov3(variant, dinov3, load_script):
    config, prefix = CONFIGS[variant]
    meta = dinov3['meta']['pera_vit']
    assert (meta['qkv_bias'], meta['num_register_tokens'], meta['pos_embed_layout']) == (
        'qv',
        4,
        'none',
    )
    work = dinov3['root'] / variant
    train = load_script(REPO_ROOT / 'tools/train.py')
    train.main(
        [str(config), '--work-dir', str(work), '--no-validate']
        + _options(prefix, meta, dinov3['ckpt'], dinov3['data'])
    )
    weights = dinov3['state_dict']
    vit_keys = [k for k in weights if not k.startswith('norm.')]
    log = read_latest_log(work)
    m = re.search(
        r'PerAViTAdapter: loaded (\d+) ViT tensors from .*unexpected \(unused\): (\[.*?\])', log
    )
    assert m, 'no load report of the converted checkpoint in the log'
    assert int(m.group(1)) == len(vit_keys) and m.group(2) == "['norm.weight', 'norm.bias']"
    losses = [row['loss'] for row in read_scalars(work) if 'loss' in row]
    assert len(losses) == ITERS and all(torch.isfinite(torch.tensor(losses)))
    state = torch.load(work / f'iter_{ITERS}.pth', map_location='cpu', weights_only=True)[
        'state_dict'
    ]
    inner = 'backbone.module.' if variant == 'lora' else 'backbone.'
    for key in vit_keys:
        name = inner + key
        if variant == 'lora' and name not in state:
            layer, _, param = name.rpartition('.')  # an adapted linear (qkv, proj)
            name = f'{layer}.original_layer.{param}'
        assert name in state, name
        if variant == 'lora':  # the ViT is frozen: the base keeps the converted weights
            assert torch.equal(state[name], weights[key]), key
    if variant == 'full':
        changed = [k for k in vit_keys if not torch.equal(state[inner + k], weights[k])]
        assert 'register_tokens' in changed and 'blocks.0.attn.q_bias' in changed
    else:
        lora_params = 4 * 8 * ((64 + 192) + (64 + 64))  # rank 8 on qkv and proj of 4 blocks
        assert f'LoRA {lora_params:,};' in log
        lora_up = state['backbone.module.blocks.0.attn.qkv.lora_up.weight']
        assert lora_up.abs().sum() > 0  # B left zero: LoRA on the q/v-bias qkv trained
