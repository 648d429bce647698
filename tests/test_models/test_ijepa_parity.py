"""Replay one recorded training step of the I-JEPA authors' code (4-band input).

The record (../shared/design/parity-ijepa.md) holds the initial weights in the
reference's names, the normalised input, the masks, the param groups and every
expected quantity. Weights go through our checkpoint converter; the step runs through
our IJEPA, our optimizer wrapper and parameter groups (the schedule config's
``optim_wrapper``), our schedulers and our EMA hook's momentum, and must match to 1e-5
relative L2 per tensor (1e-6 on the targets, which pins the target layer-norm eps).
"""

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import MODELS, PARAM_SCHEDULERS

import pera_mm  # noqa: F401  (registration)
from pera_mm.engine.hooks import LinearTeacherEMAHook
from pera_mm.models.utils.multiblock_mask_sampler import MultiBlockMaskSampler
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.parity import assert_relative_close
from pera_mm.utils.ijepa_checkpoint import ijepa_predictor_name, load_ijepa_checkpoint

pytestmark = pytest.mark.needs_shared
TOL, TARGET_TOL = 1e-5, 1e-6
SCHEDULE = REPO_ROOT / 'configs' / '_base_' / 'schedules' / 'ijepa_adamw-300e.py'


def our_name(ref_name):
    """'encoder.X' / 'predictor.X' (the record's grad and group names) -> IJEPA names."""
    part, name = ref_name.split('.', 1)
    return 'backbone.' + name if part == 'encoder' else 'neck.' + ijepa_predictor_name(name)


@pytest.fixture(scope='module')
def record(shared_path):
    return torch.load(shared_path('parity/ijepa_parity_v1.pt'), weights_only=True)


def build_model(rec):
    enc, pred, masks = (
        rec['config']['encoder'],
        rec['config']['predictor'],
        rec['config']['mask_collator'],
    )
    C = enc['embed_dim']
    model = MODELS.build(
        dict(
            type='IJEPA',
            backbone=dict(
                type='IJEPAViT',
                arch=dict(
                    embed_dims=C,
                    num_layers=enc['depth'],
                    num_heads=enc['num_heads'],
                    feedforward_channels=C * enc['mlp_ratio'],
                ),
                img_size=enc['img_size'],
                patch_size=enc['patch_size'],
                in_channels=enc['in_chans'],
            ),
            neck=dict(
                type='IJEPAPredictor',
                embed_dims=pred['predictor_embed_dim'],
                num_layers=pred['depth'],
            ),
            mask_sampler=dict(min_keep=masks['min_keep']),
            data_preprocessor=dict(type='MultiBandDataPreProcessor', num_bands=enc['in_chans']),
        )
    )
    parts = ('encoder', 'predictor', 'target_encoder')
    ckpt = {p: {k: v.clone() for k, v in rec[f'{p}_state'].items()} for p in parts}
    report = load_ijepa_checkpoint(model, ckpt)
    assert report == dict(missing=['mask_sampler.calls'], unexpected=[])
    return model


def build_optim_wrapper(model, rec):
    cfg = Config.fromfile(str(SCHEDULE)).optim_wrapper.to_dict()
    opt = rec['config']['optimizer']
    assert (
        cfg['optimizer']['lr'] == opt['lr']
        and cfg['optimizer']['weight_decay'] == opt['weight_decay']
    )
    assert (
        tuple(cfg['optimizer']['betas']) == tuple(opt['betas'])
        and cfg['optimizer']['eps'] == opt['eps']
    )
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type=cfg.pop('constructor'),
            optim_wrapper_cfg=cfg,
            paramwise_cfg=cfg.pop('paramwise_cfg'),
        )
    )
    return constructor(model)


def test_sampler_replays_the_recorded_masks(record):
    """Seeded like the reference (its counter 0 for the sizes, global seed 7 for the
    positions), our sampler draws exactly the recorded masks, before and after the cut."""
    mc = record['config']['mask_collator']
    grid = mc['input_size'] // mc['patch_size']
    sampler = MultiBlockMaskSampler(
        (grid, grid),
        num_targets=mc['npred'],
        target_scale=tuple(mc['pred_mask_scale']),
        target_aspect_ratio=tuple(mc['aspect_ratio']),
        context_scale=tuple(mc['enc_mask_scale']),
        min_keep=mc['min_keep'],
    )
    size_gen = torch.Generator().manual_seed(mc['itr_counter_seed'])
    pos_gen = torch.Generator().manual_seed(mc['global_torch_seed_before_call'])
    ctx, tgt = sampler.sample_with_generators(4, size_gen, pos_gen)
    assert len(ctx) == 1 and torch.equal(ctx[0], record['masks_enc'][0])
    assert len(tgt) == 4 and all(torch.equal(a, b) for a, b in zip(tgt, record['masks_pred']))
    untruncated = [c[0].tolist() for c in sampler.last_untruncated['contexts']]
    assert untruncated == mc['context_untruncated']
    assert tuple(x.numel() for x in sampler.last_untruncated['targets'][0][:1]) == (12,)


def test_param_groups_match_the_reference(record):
    model = build_model(record)
    wrapper = build_optim_wrapper(model, record)
    ours = {}
    named = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            ours[named[id(p)]] = group['weight_decay']
    expected = {}
    for group in record['param_groups']:
        for name in group['names']:
            expected[our_name(name)] = group['weight_decay']
    # the two sin-cos tables sit in the reference's decay groups without gradients; ours
    # leaves them out of the optimizer (requires_grad=False): AdamW skips them either way
    tables = {'backbone.pos_embed', 'neck.pos_embed'}
    assert tables <= set(expected) and not tables & set(ours)
    assert all(not dict(model.named_parameters())[t].requires_grad for t in tables)
    assert ours == {k: v for k, v in expected.items() if k not in tables}
    assert ours['neck.mask_token'] == 0.04  # decayed, as in the reference


def test_one_training_step_matches_the_record(record):
    torch.manual_seed(0)
    model = build_model(record)
    model.train()
    wrapper = build_optim_wrapper(model, record)
    # the record ran the schedulers with degenerate settings: lr 1e-3, wd 0.04 exactly
    opt = record['config']['optimizer']
    for name, value in (('lr', opt['lr']), ('weight_decay', opt['weight_decay'])):
        PARAM_SCHEDULERS.build(
            dict(
                type='IJEPAWarmupCosineParamScheduler',
                optimizer=wrapper,
                param_name=name,
                final_value=value,
                warmup=2,
                start_value=value,
                end=10,
                by_epoch=False,
            )
        )
    for group in wrapper.optimizer.param_groups:
        assert group['lr'] == pytest.approx(opt['lr'], abs=0)
        assert group['weight_decay'] in (0.0, opt['weight_decay'])

    with wrapper.optim_context(model):
        out = model.predict_targets(record['input'], record['masks_enc'][0], record['masks_pred'])
        loss = model.loss_from_masks(record['input'], record['masks_enc'][0], record['masks_pred'])[
            'loss'
        ]
    for key in ('target_features', 'targets'):
        assert_relative_close(out[key], record[key], key, TARGET_TOL)
    for key in ('context_features', 'predictions'):
        assert_relative_close(out[key], record[key], key)
    assert loss.item() == pytest.approx(record['loss'], rel=TOL)

    wrapper.backward(loss)
    params = dict(model.named_parameters())
    assert len(record['grads']) == 83
    for ref_name, g in record['grads'].items():
        assert_relative_close(params[our_name(ref_name)].grad, g, f'grad {ref_name}')
    norm = torch.sqrt(sum(params[our_name(n)].grad.double().pow(2).sum() for n in record['grads']))
    assert norm.item() == pytest.approx(record['grad_norm'], rel=TOL)
    wrapper.step()
    wrapper.zero_grad()

    hook = LinearTeacherEMAHook()
    momentum = hook.momentum_at(0, max_iters=10)
    assert momentum == record['config']['ema']['momentum']
    model.update_teacher(momentum)

    state = model.state_dict()
    for part, prefix in (('encoder', 'backbone.'), ('target_encoder', 'target_encoder.')):
        for name, value in record[f'{part}_after'].items():
            assert_relative_close(state[prefix + name], value, f'{part}_after {name}')
    for name, value in record['predictor_after'].items():
        assert_relative_close(
            state['neck.' + ijepa_predictor_name(name)], value, f'predictor_after {name}'
        )
