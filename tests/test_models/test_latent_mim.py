"""LatentMIM parts on tiny inputs: gap patchify, EMA before the step, any band
count, bad inputs, the downstream forward, and the loss falling on a fixed batch."""

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import pera_mm  # noqa: F401
from pera_mm.models.backbones.latent_mim_vit import gap_patchify
from pera_mm.utils.errors import PeraConfigError, PeraDataError


def tiny_cfg(in_channels=3, **kw):
    cfg = dict(
        type='LatentMIM',
        backbone=dict(
            type='LatentMIMViT',
            embed_dims=32,
            num_layers=2,
            num_heads=2,
            in_channels=in_channels,
            patch_size=16,
            projector=dict(mlp_dim=64, mlp_depth=3),
        ),
        neck=dict(type='LatentMIMDecoder', embed_dims=16, num_layers=1, num_heads=2),
        loss=dict(type='PatchInfoNCELoss', tau=0.2),
        sim_loss=dict(type='SimilarityTargetLoss', loss_weight=0.1),
        patch_gap=4,
        num_visible=3,
    )
    cfg.update(kw)
    return cfg


def build(**kw):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(**kw))
    model.init_weights()
    return model.train()


def test_gap_patchify_takes_the_drawn_window_of_each_cell():
    torch.manual_seed(0)
    img = torch.randn(2, 3, 40, 60)
    rows, cols = torch.randint(0, 4, (2, 2, 3)), torch.randint(0, 4, (2, 2, 3))
    patches = gap_patchify(img, 16, 4, rows, cols)
    assert patches.shape == (2, 6, 16 * 16 * 3)
    for b in range(2):
        for r in range(2):
            for c in range(3):
                y, x = 20 * r + rows[b, r, c], 20 * c + cols[b, r, c]
                window = img[b, :, y : y + 16, x : x + 16].permute(1, 2, 0).flatten()
                assert torch.equal(patches[b, r * 3 + c], window)
    # without a gap: contiguous patches, (p, q, c) order
    flat = gap_patchify(img[:, :, :32, :48], 16, 0)
    assert torch.equal(flat[1, 4], img[1, :, 16:32, 16:32].permute(1, 2, 0).flatten())


def test_init_copies_the_encoder_into_the_frozen_target():
    model = build()
    for (n, s), t in zip(model.backbone.state_dict().items(), model.target.state_dict().values()):
        assert torch.equal(s, t), n
    assert not any(p.requires_grad for p in model.target.parameters())
    assert torch.count_nonzero(model.neck.mask_token) == 0
    assert torch.count_nonzero(model.backbone.blocks[0].attn.qkv.bias) == 0
    assert model.backbone.head.norm0.eps == 1e-5 and model.backbone.norm.eps == 1e-6


def test_target_ema_runs_before_the_step_on_the_pre_step_encoder():
    model = build()
    with torch.no_grad():  # make target and online differ
        for p in model.target.parameters():
            p.add_(0.01)
    online = [p.detach().clone() for p in model.backbone.parameters()]
    target = [p.detach().clone() for p in model.target.parameters()]
    images = torch.randn(2, 3, 80, 80)
    model.momentum = 0.75
    losses = model.loss(images, None)
    for t0, s0, t1 in zip(target, online, model.target.parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * s0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.parse_losses(losses)[0].backward()
    assert all(p.grad is None for p in model.target.parameters())
    after_ema = [p.detach().clone() for p in model.target.parameters()]
    optimizer.step()
    assert all(torch.equal(a, t) for a, t in zip(after_ema, model.target.parameters()))
    # no EMA when the hook says so (accumulation) nor in eval mode
    model.update_ema = False
    model.loss(images, None)
    model.update_ema = True
    model.eval()
    model.loss(images, None)
    assert all(torch.equal(a, t) for a, t in zip(after_ema, model.target.parameters()))


def test_any_band_count_and_every_trainable_parameter_gets_a_gradient():
    model = build(in_channels=4)
    losses = model.loss([torch.randn(3, 4, 60, 80)], None)
    assert set(losses) == {
        'loss_infonce',
        'loss_sim_pred',
        'loss_sim_vis',
        'monitor_sim_pred',
        'monitor_sim_vis',
        'monitor_sim_trg',
    }
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert model.backbone.patch_embed.weight.shape == (32, 4 * 16 * 16)


def test_bad_inputs_are_one_line_errors():
    model = build()
    with pytest.raises(PeraDataError, match=r'90x80 images are not a multiple of .* = 20 px'):
        model.loss(torch.randn(1, 3, 90, 80), None)
    with pytest.raises(
        PeraDataError, match=r'\(B, 3, H, W\) \(in_channels\), got \(1, 4, 80, 80\)'
    ):
        model.loss(torch.randn(1, 4, 80, 80), None)
    with pytest.raises(PeraConfigError, match='num_visible'):
        build(num_visible=4).loss(torch.randn(1, 3, 40, 40), None)
    with pytest.raises(PeraConfigError, match='patch_gap'):
        MODELS.build(tiny_cfg(patch_gap=-1))
    with pytest.raises(PeraDataError, match='bands but in_channels is 3'):
        model.backbone(torch.randn(1, 4, 32, 32))


def test_downstream_forward_outputs():
    model = build()
    x = torch.randn(2, 3, 64, 48)
    model.backbone.out_type = 'featmap'
    (fmap,) = model.extract_feat(x)
    assert fmap.shape == (2, 32, 4, 3)
    model.backbone.out_type = 'raw'
    (raw,) = model.backbone(x)
    assert raw.shape == (2, 13, 32)
    assert torch.equal(raw[:, 1:].transpose(1, 2).reshape(2, 32, 4, 3), fmap)
    model.backbone.out_type = 'avg_featmap'
    torch.testing.assert_close(model.backbone(x)[0], raw[:, 1:].mean(1))


def test_loss_falls_on_a_fixed_batch():
    model = build()
    torch.manual_seed(1)
    images = torch.randn(4, 3, 80, 80)
    draws = model.draw(4, (4, 4), 'cpu')
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.95)
    )
    history = []
    for _ in range(15):
        total, _ = model.parse_losses(model.loss_with_draws(images, draws))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert history[-1] < 0.8 * history[0], history


def test_bf16_autocast_step_keeps_fp32_losses_and_target():
    model = build()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(torch.randn(2, 3, 80, 80), None)
    assert losses['loss_infonce'].dtype == torch.float32
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in model.target.parameters())
    model.parse_losses(losses)[0].backward()
    assert model.backbone.patch_embed.weight.grad.dtype == torch.float32


def test_paper_config_builds_the_stated_model():
    from mmengine.config import Config

    from pera_mm.testing import REPO_ROOT

    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs/latent_mim/latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py')
    )
    model = MODELS.build(cfg.model)
    vit = model.backbone
    assert (vit.embed_dims, vit.num_layers, len(vit.blocks[0].attn.qkv.weight)) == (384, 12, 1152)
    assert len(model.neck.blocks) == 3 and model.num_visible == 20
    assert model.grid_of(torch.empty(1, 3, 280, 280)) == (14, 14)
    adamw = cfg.optim_wrapper.optimizer
    assert (adamw.lr, tuple(adamw.betas), adamw.weight_decay) == (1.5e-4, (0.9, 0.95), 0.05)
    assert cfg.train_dataloader.batch_size == 128 and cfg.train_cfg.max_epochs == 300


@pytest.mark.parametrize(
    'name, bands',
    [
        ('latent_mim_vit-small-p16_1xb128-300e_s2-4band-280px.py', 4),
        ('latent_mim_vit-small-p16_fsdp-8xb16-300e_rsrsd-280px.py', 3),
    ],
)
def test_four_band_and_fsdp_configs_keep_the_paper_setting(name, bands):
    from mmengine.config import Config

    from pera_mm.testing import REPO_ROOT

    cfg = Config.fromfile(str(REPO_ROOT / 'configs/latent_mim' / name))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert model.backbone.in_channels == bands and model.backbone.embed_dims == 384
    assert len(model.neck.blocks) == 3 and model.num_visible == 20
    assert model.grid_of(torch.empty(1, bands, 280, 280)) == (14, 14)
    adamw = cfg.optim_wrapper.optimizer
    assert (adamw.lr, tuple(adamw.betas), adamw.weight_decay) == (1.5e-4, (0.9, 0.95), 0.05)
    assert cfg.train_cfg.max_epochs == 300
    if bands == 4:
        assert cfg.train_dataloader.batch_size == 128
        assert model.data_preprocessor.num_bands == 4
        x = torch.full((1, 4, 280, 280), 1373.0)  # B02 DN at the band mean -> 0
        assert model.data_preprocessor(dict(inputs=x), True)['inputs'][0, 0].abs().max() < 1e-4
    else:  # 8 ranks x 16 = the paper's 128, sharded by the hosts' wrap policy
        assert cfg.train_dataloader.batch_size * 8 == 128 and cfg.runner_type == 'FlexibleRunner'
        policy = cfg.strategy.model_wrapper.auto_wrap_policy.type
        assert policy == 'latent_mim_fsdp_wrap_policy' and cfg.optim_wrapper.use_fsdp
