"""CPU smoke test of PerA + SA ('ema' HR teacher) on HR/MR pairs (simulated-scale OSCD).

The MR smoke model plus the component at the SA model's settings, its data pipeline
cutting the 64 px HR crop of each 32 px global crop, and a faster HR momentum
(0.9 -> 1.0) so that 10 iterations move the HR teacher visibly. Switch to the snapshot
teacher with ``--cfg-options model.spatial_affinity.mode=snapshot
model.spatial_affinity.refresh_interval=4``.
"""

_base_ = ['./pera_vit-tiny-p8_1xb2-10iter_oscd-pairs-32px_mr-only_cpu-smoke.py']

model = dict(
    spatial_affinity=dict(
        mode='ema',
        momentum=0.9,
        end_momentum=1.0,
        downsample='bilinear',
        scale=2,
        loss=dict(type='GramLoss', reduction='image'),
        loss_weight=1.0,
    )
)

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            pipeline=[
                dict(type='LoadHRMRPairFromFile', num_bands={{_base_.num_bands}}, to_float32=True),
                dict(
                    type='PairedPerAMultiCropViews',
                    num_bands={{_base_.num_bands}},
                    with_hr=True,
                    global_crop_size={{_base_.img_size}},
                    local_crop_size=16,
                    num_global_crops=2,
                    num_local_crops=2,
                    global_crop_scale=(0.4, 1.0),
                    local_crop_scale=(0.1, 0.4),
                    student_color={{_base_.colour_off}},
                    teacher_color={{_base_.colour_off}},
                ),
                {{_base_.masks}},
                dict(
                    type='PackPerAViewsWithHR',
                    algorithm_keys=['global_masks', 'local_masks'],
                    meta_keys=['img_path', 'hr_img_path', 'scale', 'global_crop_boxes'],
                ),
            ]
        )
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
