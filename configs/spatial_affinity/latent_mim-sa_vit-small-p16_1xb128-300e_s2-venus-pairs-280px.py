"""LatentMIM ViT-S/16 + spatial affinity (SA), the paper's cross-scale model (method.md §2).

The MR model plus the component: an HR teacher (LatentMIM's encoder architecture) that
is an EMA of the online encoder ('ema' mode, the paper's) runs on the 560 px HR crop of
each 280 px MR crop (s = 2). The gap patchify maps onto the HR side cell by cell: MR
window (u, v) at offset (r, c) inside its 20 px cell is HR window (u, v) of 2 x 16 px at
offset (2r, 2c) inside the 40 px HR cell, cut into the 2 x 2 HR patches (2u + i, 2v + j)
of a 28 x 28 HR grid. Their features (before the MLP head) are downsampled to the MR
grid by antialiased bilinear interpolation (the paper's best) and the gram loss
(per image) compares them with the online encoder's outputs (before the head) at the
visible patches the host sampled.

Ours, not the paper's (it gives none): the loss weight 1.0 (constant), and the HR
teacher's EMA momentum, cosine 0.99 -> 1.0 (LatentMIM's own target schedule).
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_s2-venus-pairs-280px_mr-only.py']

model = dict(
    spatial_affinity=dict(
        mode='ema',
        momentum=0.99,
        end_momentum=1.0,
        downsample='bilinear',
        scale=2,
        loss=dict(type='GramLoss', reduction='image', clamp_negative=False),
        loss_weight=1.0,
        weight_warmup=0.0,
    )
)

custom_hooks = [
    dict(type='LatentMIMScheduleHook', momentum=0.99, end_momentum=1.0, sim_target=(0.75, 0.25)),
    dict(type='SpatialAffinityHook'),
    dict(type='RandomStateHook'),
]
