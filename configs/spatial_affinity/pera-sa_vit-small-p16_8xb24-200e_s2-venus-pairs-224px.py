"""PerA ViT-S/16 + spatial affinity (SA): the cross-scale model of method.md §2, for PerA.

The MR model plus the component. ``PairedPerAMultiCropViews`` cuts, for each 224 px
global crop, the HR window of the same ground (the MR box x 2, rendered to 448 px, same
flips); ``PackPerAViewsWithHR`` appends these 2 HR crops after PerA's 20 views. The HR
teacher (PerA's teacher backbone architecture) is an EMA of the student backbone ('ema',
the paper's); its 28 x 28 patch features of each HR crop are downsampled to the 14 x 14
MR grid by antialiased bilinear interpolation (the paper's best); the gram loss (per
image, no clamping) compares them with the student's mask-token outputs at the l patches
of the global crops (PerA's own random sampling; the pixel head's input).

Ours, not the paper's (it gives none): the loss weight 1.0 (constant), and the HR
teacher's EMA momentum, cosine 0.992 -> 1.0 (PerA's teacher schedule).
"""

_base_ = ['./pera_vit-small-p16_8xb24-200e_s2-venus-pairs-224px_mr-only.py']

model = dict(
    spatial_affinity=dict(
        mode='ema',
        momentum=0.992,
        end_momentum=1.0,
        downsample='bilinear',
        scale={{_base_.scale}},
        loss=dict(type='GramLoss', reduction='image', clamp_negative=False),
        loss_weight=1.0,
        weight_warmup=0.0,
    )
)

sa_views = dict(
    type='PairedPerAMultiCropViews',
    num_bands={{_base_.num_bands}},
    with_hr=True,
    global_crop_size={{_base_.img_size}},
    local_crop_size=96,
    num_global_crops=2,
    num_local_crops=8,
    global_crop_scale=(0.4, 1.0),
    local_crop_scale=(0.05, 0.4),
    student_color={{_base_.colour_off}},
    teacher_color={{_base_.colour_off}},
)
sa_pack = dict(
    type='PackPerAViewsWithHR',
    algorithm_keys=['global_masks', 'local_masks'],
    meta_keys=['img_path', 'hr_img_path', 'scale', 'global_crop_boxes', 'hr_global_crop_boxes'],
)
train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadHRMRPairFromFile', num_bands={{_base_.num_bands}}, to_float32=True),
            sa_views,
            {{_base_.masks}},
            sa_pack,
        ]
    )
)

custom_hooks = [
    dict(type='TeacherEMAHook'),
    dict(type='TeacherTemperatureHook'),
    dict(type='CenterUpdateHook'),
    dict(type='CollapseMonitorHook'),
    dict(type='SpatialAffinityHook'),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]
