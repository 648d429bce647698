# Copyright (c) pera-mm contributors. All rights reserved.
"""LoRA through MMPretrain's LoRAModel (``ViTLoRAModel``): gradients, counts, merge, checkpoints.

The models are the LoRA CPU smoke configs (tiny ViT: 64 wide, 4 blocks) of scene
classification (PerAViT) and segmentation (PerAViTAdapter), initialised from a PerA
checkpoint made here.
"""

import logging
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmpretrain.models.peft.lora import LoRALinear
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS

from pera_mm.models.peft import ViTLoRAModel, is_vit_param, merge_lora_state_dict
from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.utils.errors import PeraConfigError, PeraDataError

CLS = REPO_ROOT / 'configs' / 'scene_classification'
SEG = REPO_ROOT / 'configs' / 'segmentation'
CLS_LORA = CLS / 'pera_vit-tiny-p16_lora-1xb8-6iter_aid-64px_cpu-smoke.py'
CLS_FT = CLS / 'pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py'
SEG_LORA = SEG / 'upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_lora_cpu-smoke.py'
SEG_PLAIN = SEG / 'upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py'
MERGE = REPO_ROOT / 'tools' / 'model_converters' / 'merge_lora.py'
TINY = dict(dims=64, blocks=4, mlp=128)


@pytest.fixture(scope='module')
def pera_ckpt(tmp_path_factory):
    return make_pera_checkpoint(tmp_path_factory.mktemp('lora') / 'pera_tiny.pth')


def _quiet_build(registry, model_cfg, scope):
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(model_cfg)
            model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def _cls_cfg(path, ckpt, num_classes=4):
    cfg = Config.fromfile(str(path)).model
    vit = cfg.backbone.get('module', cfg.backbone)
    vit.init_cfg.checkpoint = str(ckpt)
    cfg.head.num_classes = num_classes
    return cfg


def _seg_cfg(path, ckpt):
    cfg = Config.fromfile(str(path)).model
    adapter = cfg.backbone.get('module', cfg.backbone)
    adapter.init_cfg.checkpoint = str(ckpt)
    for part in (adapter, cfg.decode_head, cfg.auxiliary_head):
        part.norm_cfg = dict(type='BN', requires_grad=True)
    return cfg


def _randomise_lora(model, seed=1):
    """LoRA's B starts at zero; give both factors O(1/sqrt(r)) values so LoRA matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            for p in (m.lora_down.weight, m.lora_up.weight):
                p.data = torch.randn(p.shape, generator=g) * 0.3


@pytest.fixture(scope='module')
def lora_cls(pera_ckpt):
    return _quiet_build(MODELS, _cls_cfg(CLS_LORA, pera_ckpt[0]), 'mmpretrain')


@pytest.fixture(scope='module')
def lora_seg(pera_ckpt):
    return _quiet_build(SEG_MODELS, _seg_cfg(SEG_LORA, pera_ckpt[0]), 'mmseg')


def _grad_names(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n for n, p in model.named_parameters() if p.grad is not None}


def test_cls_only_lora_and_head_get_gradients(lora_cls):
    lora_cls.train()
    x = torch.randn(2, 3, 64, 64)
    loss = lora_cls(x, mode='tensor').logsumexp(dim=1).sum()
    got = _grad_names(lora_cls, loss)
    lora = {n for n, _ in lora_cls.named_parameters() if '.lora_' in n}
    head = {'head.fc.weight', 'head.fc.bias'}
    # 4 blocks x (qkv, proj) x (down, up)
    assert len(lora) == 16 and got == lora | head
    trainable = {n for n, p in lora_cls.named_parameters() if p.requires_grad}
    assert trainable == lora | head


def test_seg_lora_adapter_and_heads_get_gradients_vit_stays_frozen(lora_seg):
    lora_seg.train()
    x = torch.randn(2, 3, 64, 64)
    feats = lora_seg.extract_feat(x)
    loss = lora_seg.decode_head(feats).square().mean() + sum(f.square().mean() for f in feats)
    loss = loss + lora_seg.auxiliary_head(feats).square().mean()
    got = _grad_names(lora_seg, loss)
    names = {n for n, _ in lora_seg.named_parameters()}
    lora = {n for n in names if '.lora_' in n}
    vit_base = {
        n
        for n in names
        if n.startswith('backbone.module.')
        and '.lora_' not in n
        and is_vit_param(n[len('backbone.module.') :])
    }
    adapter = {
        n
        for n in names
        if n.startswith('backbone.') and not is_vit_param(n[len('backbone.module.') :])
    }
    heads = {n for n in names if not n.startswith('backbone.')}
    assert len(lora) == 16
    # the ViT: patch embedding, position table, the 4 blocks' norms / linears / biases
    assert 'backbone.module.pos_embed' in vit_base and len(vit_base) == 2 + 1 + 4 * 12
    assert {n.split('.')[2] for n in adapter} == {
        'level_embed',
        'spm',
        'interactions',
        'up',
        'norm1',
        'norm2',
        'norm3',
        'norm4',
    }
    assert got & vit_base == set()
    assert lora <= got and adapter <= got
    # every head parameter got a gradient (the auxiliary head's conv seg included)
    assert got - lora - adapter == heads


def _lora_formula(model, rank):
    """rank * (in + out) over the adapted linears."""
    return sum(
        rank * (m.original_layer.in_features + m.original_layer.out_features)
        for m in model.modules()
        if isinstance(m, LoRALinear)
    )


def test_trainable_count_matches_the_formula(lora_cls, lora_seg, pera_ckpt):
    d, blocks = TINY['dims'], TINY['blocks']
    per_block = 8 * ((d + 3 * d) + (d + d))  # rank 8: qkv (64 -> 192) and proj (64 -> 64)
    assert _lora_formula(lora_cls, 8) == blocks * per_block == 12288
    head = d * 4 + 4
    trainable = sum(p.numel() for p in lora_cls.parameters() if p.requires_grad)
    assert trainable == 12288 + head == 12548
    counts = lora_cls.backbone.parameter_counts()
    assert counts == dict(
        lora=12288,
        trainable=12288,
        total=counts['total'],
        layers=8,
    )
    plain = _quiet_build(MODELS, _cls_cfg(CLS_FT, pera_ckpt[0]), 'mmpretrain')
    assert counts['total'] == sum(p.numel() for p in plain.backbone.parameters()) + 12288
    # the segmentor: LoRA + every adapter-only parameter + both heads
    seg_train = sum(p.numel() for p in lora_seg.parameters() if p.requires_grad)
    adapter_only = sum(
        p.numel() for n, p in lora_seg.backbone.module.named_parameters() if not is_vit_param(n)
    )
    heads = sum(p.numel() for n, p in lora_seg.named_parameters() if not n.startswith('backbone.'))
    assert seg_train == _lora_formula(lora_seg, 8) + adapter_only + heads
    assert _lora_formula(lora_seg, 8) == 12288


def test_mlp_targets_and_per_target_rank():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = ViTLoRAModel(
            module=dict(type='PerAViT', arch='tiny', img_size=32),
            rank=4,
            alpha=4,
            targets=[
                dict(type=r'blocks\.\d+\.attn\.qkv'),
                dict(type=r'blocks\.\d+\.mlp\.fc[12]', rank=2, alpha=8),
            ],
        )
    c, h = 192, 768  # arch 'tiny': 12 blocks, embed 192, mlp 768
    expected = 12 * (4 * (c + 3 * c) + 2 * (c + h) + 2 * (h + c))
    assert model.parameter_counts()['trainable'] == expected
    assert model.module.blocks[0].mlp.fc1.scaling == 4.0
    assert float(model.module.blocks[0].attn.qkv.lora_scaling) == 1.0


def _merged_plain(lora_model, registry, plain_cfg, scope):
    merged = merge_lora_state_dict(lora_model.state_dict())
    plain = _quiet_build(registry, plain_cfg, scope)
    plain.to(next(lora_model.parameters()).dtype)  # no rounding of a float64 merge
    result = plain.load_state_dict(merged, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return plain.eval()


def test_merged_classifier_equals_lora_classifier(pera_ckpt):
    model = _quiet_build(MODELS, _cls_cfg(CLS_LORA, pera_ckpt[0]), 'mmpretrain')
    _randomise_lora(model)
    # float64 (merge included), as for the segmentor: in fp32 the two summation orders
    # alone differ by up to 2e-5 on some CPUs (seen on an AMD EPYC)
    model.double().eval()
    plain = _merged_plain(model, MODELS, _cls_cfg(CLS_FT, pera_ckpt[0]), 'mmpretrain')
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref, out = model(x, mode='tensor'), plain(x, mode='tensor')
        base = _quiet_build(MODELS, _cls_cfg(CLS_FT, pera_ckpt[0]), 'mmpretrain')
        base.head.load_state_dict(model.head.state_dict())
        unadapted = base.double().eval()(x, mode='tensor')
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
    # and LoRA did change the function (the comparison is not trivial)
    assert (unadapted - ref).abs().max() > 1e-2


def test_merged_segmentor_equals_lora_segmentor(pera_ckpt):
    # float64: the adapter's output BNs (fresh running statistics) give |y| up to ~30, where
    # float32 round-off alone reaches 3e-4; in float64 a merge error cannot hide under it
    lora_seg = _quiet_build(SEG_MODELS, _seg_cfg(SEG_LORA, pera_ckpt[0]), 'mmseg')
    _randomise_lora(lora_seg, seed=2)
    lora_seg.double().eval()
    merged = merge_lora_state_dict(lora_seg.state_dict())
    plain = _quiet_build(SEG_MODELS, _seg_cfg(SEG_PLAIN, pera_ckpt[0]), 'mmseg').double()
    result = plain.load_state_dict(merged, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    plain.eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = lora_seg.extract_feat(x)
        out = plain.extract_feat(x)
        logits = plain.decode_head(out)
        assert torch.allclose(logits, lora_seg.decode_head(ref), rtol=0, atol=1e-5)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _qv_cls_cfg(path):
    """A smoke classifier with DINOv3's attention form (q and v biases, no k bias), from scratch."""
    cfg = _cls_cfg(path, '/nonexistent/pera.pth')
    vit = cfg.backbone.get('module', cfg.backbone)
    vit.update(qkv_bias='qv', init_cfg=None)
    return cfg


def test_lora_on_qv_attention_trains_lora_only_and_merges_exactly():
    model = _quiet_build(MODELS, _qv_cls_cfg(CLS_LORA), 'mmpretrain')
    vit = model.backbone.module
    assert isinstance(vit.blocks[0].attn.qkv, LoRALinear) and vit.blocks[0].attn.q_bias is not None
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # O(1) q / v biases, so that a lost bias would show
        for blk in vit.blocks:
            blk.attn.q_bias.copy_(torch.randn(blk.attn.q_bias.shape, generator=g))
            blk.attn.v_bias.copy_(torch.randn(blk.attn.v_bias.shape, generator=g))
    _randomise_lora(model, seed=4)
    # only LoRA and the head get gradients (the q / v biases are frozen base weights)
    model.train()
    x = torch.randn(2, 3, 64, 64, generator=g)
    got = _grad_names(model, model(x, mode='tensor').logsumexp(dim=1).sum())
    lora = {n for n, _ in model.named_parameters() if '.lora_' in n}
    assert len(lora) == 16 and got == lora | {'head.fc.weight', 'head.fc.bias'}
    assert not vit.blocks[0].attn.q_bias.requires_grad
    # the merged plain 'qv' classifier gives the LoRA classifier's outputs
    model.eval()
    plain = _merged_plain(model, MODELS, _qv_cls_cfg(CLS_FT), 'mmpretrain')
    with torch.no_grad():
        ref, out = model(x, mode='tensor'), plain(x, mode='tensor')
        tokens = vit(x)[0]
        merged_tokens = plain.backbone(x)[0]
        attn = vit.blocks[0].attn
        qkv = attn.qkv_projection(x.new_ones(1, 2, 64))
        bias = torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
        expected = attn.qkv(x.new_ones(1, 2, 64)) + bias  # LoRALinear called as a module
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged_tokens, tokens, rtol=0, atol=1e-5)
    torch.testing.assert_close(qkv, expected, rtol=0, atol=0)
    # LoRA does change the function: the merged weights differ from the base
    base = vit.blocks[0].attn.qkv.original_layer.weight
    assert (plain.backbone.blocks[0].attn.qkv.weight - base).abs().max() > 1e-2


def test_qv_projection_of_a_plain_linear_is_the_fused_one():
    """Without LoRA the 'qv' projection is one linear with the bias, bit for bit."""
    from pera_mm.models.utils.attention import Attention
    from pera_mm.models.utils.onednn_linear import linear

    attn = Attention(64, 1, qkv_bias='qv')
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(2, 5, 64, generator=g)
    bias = torch.cat([attn.q_bias, torch.zeros(64), attn.v_bias])
    assert torch.equal(attn.qkv_projection(x), linear(x, attn.qkv.weight, bias, attn.linear_kernel))


def test_checkpoint_keeps_base_weights_and_reloads(lora_cls, pera_ckpt):
    state = lora_cls.state_dict()
    teacher = pera_ckpt[1]
    # every teacher tensor is in the state dict (linears under original_layer)
    for key, value in teacher.items():
        lora_key = f'backbone.module.{key}'
        if lora_key not in state:
            lora_key = lora_key.replace('.weight', '.original_layer.weight').replace(
                '.bias', '.original_layer.bias'
            )
        assert torch.equal(state[lora_key], value), key
    assert state['backbone.module.blocks.0.attn.qkv.lora_scaling'] == 2.0  # alpha 16 / rank 8
    # a model built WITHOUT the init checkpoint (the file is not read while building)
    cfg = _cls_cfg(CLS_LORA, '/nonexistent/pera.pth')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        fresh = MODELS.build(cfg)
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_init_weights_loads_the_base_not_the_lora(pera_ckpt):
    cfg = _cls_cfg(CLS_LORA, pera_ckpt[0])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    qkv = model.backbone.module.blocks[1].attn.qkv
    teacher_qkv = pera_ckpt[1]['blocks.1.attn.qkv.weight']
    assert not torch.equal(qkv.original_layer.weight, teacher_qkv)  # built: random init
    down = qkv.lora_down.weight.clone()
    model.init_weights()
    assert torch.equal(qkv.original_layer.weight, teacher_qkv)
    assert isinstance(model.backbone.module.blocks[1].attn.qkv, LoRALinear)
    assert torch.equal(qkv.lora_down.weight, down) and not qkv.lora_up.weight.any()
    assert not qkv.original_layer.weight.requires_grad and qkv.lora_down.weight.requires_grad


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(targets=[dict(type='nothing_like_this')]), 'no nn.Linear of PerAViT matches'),
        (dict(targets=[]), 'targets is empty'),
        (dict(targets=[dict(type='qkv')], rank=0), 'must be an int >= 1'),
    ],
)
def test_bad_lora_configs_raise_one_line(kwargs, message):
    module = dict(type='PerAViT', arch='tiny', img_size=32, **kwargs.pop('module_extra', {}))
    args = dict(rank=4, alpha=4, targets=[dict(type=r'blocks\.\d+\.attn\.qkv')])
    args.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'), pytest.raises(
        PeraConfigError, match=message
    ):
        ViTLoRAModel(module=module, **args)


def test_a_target_outside_the_vit_blocks_is_refused():
    adapter = dict(
        type='PerAViTAdapter',
        arch=dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128),
        pretrain_size=64,
        deform_num_heads=2,
        interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
    )
    with DefaultScope.overwrite_default_scope('mmseg'), pytest.raises(
        PeraConfigError, match='outside the ViT blocks'
    ):
        ViTLoRAModel(module=adapter, rank=2, targets=[dict(type='value_proj')])


def test_merge_refuses_lora_only_and_plain_state_dicts(lora_cls):
    state = lora_cls.state_dict()
    with pytest.raises(PeraDataError, match='not of a ViTLoRAModel'):
        merge_lora_state_dict({k: v for k, v in state.items() if 'lora_' not in k})
    lora_only = {k: v for k, v in state.items() if '.lora_' in k}
    with pytest.raises(PeraDataError, match='original_layer.weight is missing'):
        merge_lora_state_dict(lora_only)


def test_merge_tool_backbone_only_and_bad_input(lora_cls, tmp_path):
    src = tmp_path / 'lora.pth'
    torch.save({'state_dict': lora_cls.state_dict(), 'meta': {}}, src)
    dst = tmp_path / 'merged_backbone.pth'
    tool = [sys.executable, str(MERGE)]
    proc = subprocess.run(
        tool + [str(src), str(dst), '--backbone-only'], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert 'merged 8 LoRA layers' in proc.stdout
    merged = torch.load(dst, map_location='cpu', weights_only=True)
    assert merged['meta']['merged_layers'] == 8
    expected = merge_lora_state_dict(lora_cls.state_dict())
    assert set(merged['state_dict']) == {k[9:] for k in expected if k.startswith('backbone.')}
    for key, value in merged['state_dict'].items():
        assert torch.equal(value, expected['backbone.' + key]), key
    # a plain (non-LoRA) checkpoint: one line naming the file
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}}, plain)
    proc = subprocess.run(
        tool + [str(plain), str(tmp_path / 'o.pth')], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f'error: {plain}: no LoRA layer (no *.lora_scaling key); expected a checkpoint of a '
        'ViTLoRAModel backbone'
    ]


def test_init_weights_without_init_cfg_runs_the_backbone_init():
    """No checkpoint (from scratch, or load_from later): the ViT's own init still runs."""
    cfg = Config.fromfile(str(CLS_LORA)).model
    cfg.backbone.module.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    vit = model.backbone.module
    torch.nn.init.zeros_(vit.pos_embed)
    qkv = vit.blocks[1].attn.qkv
    down = qkv.lora_down.weight.clone()
    model.init_weights()
    assert vit.pos_embed.abs().sum() > 0  # trunc-normal by PerAViT.init_weights
    assert isinstance(vit.blocks[1].attn.qkv, LoRALinear)
    assert torch.equal(qkv.lora_down.weight, down) and not qkv.lora_up.weight.any()
