# Copyright (c) pera-mm contributors. All rights reserved.
"""MMSeg's own UPerNet ViT config with the backbone swapped for ``PerAViTAdapter``.

The config is the snippet of docs/segmentation.md (copied to the README), run as written
except for the ViT size: 4 blocks, 64 wide, pretrained at 64 px, from a PerA checkpoint
made here.
"""

import re
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT, TINY_ARCH, make_pera_checkpoint

DOC = REPO_ROOT / 'docs/segmentation.md'
MARK = '<!-- stock-config-snippet'


def _snippet() -> str:
    text = DOC.read_text()
    assert MARK in text, f'{DOC} lost its stock-config snippet'
    block = re.search(r'```python\n(.*?)```', text[text.index(MARK) :], re.S)
    return block.group(1)


def _batch(h, w, n=2, classes=6, seed=0):
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        label = (torch.arange(h)[:, None] // 16 + torch.arange(w)[None] // 16) % classes
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=label[None].long())
        inputs.append(img)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def test_stock_upernet_vit_config_with_the_adapter(tmp_path):
    from mmseg.registry import MODELS

    snippet = tmp_path / 'upernet_pera_stock.py'
    snippet.write_text(_snippet())
    ckpt, teacher = make_pera_checkpoint(tmp_path / 'pera.pth')
    child = tmp_path / 'tiny.py'
    child.write_text(f"""_base_ = ['./upernet_pera_stock.py']
model = dict(
    backbone=dict(arch={dict(TINY_ARCH, _delete_=True)!r}, pretrain_size=64, deform_num_heads=2,
                  interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
                  init_cfg=dict(checkpoint={str(ckpt)!r})),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
""")
    cfg = Config.fromfile(str(child))  # imports pera_mm through custom_imports
    import mmseg

    stock = Config.fromfile(  # what `mmseg::` resolves to: the configs shipped in the package
        str(Path(mmseg.__file__).parent / '.mim/configs/_base_/models/upernet_vit-b16_ln_mln.py')
    )
    assert stock.model.neck.type == 'MultiLevelNeck'  # what the snippet replaces
    assert cfg.model.neck is None and cfg.model.pretrained is None
    assert cfg.model.backbone.type == 'PerAViTAdapter'
    assert 'out_indices' not in cfg.model.backbone  # _delete_ dropped the stock ViT's keys
    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.channels == 32
    dp, stock_dp = cfg.model.data_preprocessor, stock.model.data_preprocessor
    assert (dp.mean, dp.std, dp.bgr_to_rgb) == (stock_dp.mean, stock_dp.std, stock_dp.bgr_to_rgb)
    assert dp.size_divisor == 32

    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim = build_optim_wrapper(
            model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
        )
    state = model.backbone.state_dict()
    for key in ('patch_embed.proj.weight', 'pos_embed', 'blocks.3.mlp.fc2.weight'):
        torch.testing.assert_close(state[key], teacher[key], rtol=0, atol=0)

    shapes = []
    head_forward = model.decode_head.forward  # MMSeg's heads call self.forward directly

    def spy(inputs):
        shapes.append([tuple(x.shape[-2:]) for x in inputs])
        return head_forward(inputs)

    model.decode_head.forward = spy
    h, w = 64, 96
    before = model.decode_head.conv_seg.weight.detach().clone()
    losses = []
    model.train()
    for it in range(2):
        log = model.train_step(_batch(h, w, seed=it), optim)
        losses.append(float(log['decode.loss_ce']))
    assert shapes[0] == [(h // s, w // s) for s in (4, 8, 16, 32)]
    assert len(shapes) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(before, model.decode_head.conv_seg.weight)
