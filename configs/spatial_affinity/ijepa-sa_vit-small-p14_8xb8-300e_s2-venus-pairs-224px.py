"""I-JEPA ViT-S/14 + spatial affinity (SA), the paper's cross-scale model (method.md §2).

The MR model plus the component: an HR teacher (I-JEPA's encoder architecture) that is
an EMA of the student encoder ('ema' mode, the paper's) runs on the 448 px HR crop of
each 224 px MR crop (s = 2); its 32 x 32 patch features are downsampled to the 16 x 16 MR
grid by antialiased bilinear interpolation (the paper's best), and the gram loss
(per image, no clamping) compares them with the context encoder's outputs at the
context patches the host sampled (I-JEPA's own sampling, as the paper).

Ours, not the paper's (it gives none): the loss weight 1.0 (constant), and the HR
teacher's EMA momentum, cosine 0.996 -> 1.0 (I-JEPA's start value).
"""

_base_ = ['./ijepa_vit-small-p14_8xb8-300e_s2-venus-pairs-224px_mr-only.py']

model = dict(
    spatial_affinity=dict(
        mode='ema',
        momentum=0.996,
        end_momentum=1.0,
        downsample='bilinear',
        scale=2,
        loss=dict(type='GramLoss', reduction='image', clamp_negative=False),
        loss_weight=1.0,
        weight_warmup=0.0,
    )
)

custom_hooks = [
    dict(type='LinearTeacherEMAHook'),
    dict(type='SpatialAffinityHook'),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]
