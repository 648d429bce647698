"""CPU smoke test of I-JEPA + SA ('ema' HR teacher) on HR/MR pairs (simulated-scale OSCD).

The MR smoke model plus the component at the SA model's settings, with a faster HR
momentum (0.9 -> 1.0) so that 10 iterations move the HR teacher visibly. Switch to the
snapshot teacher with ``--cfg-options model.spatial_affinity.mode=snapshot
model.spatial_affinity.refresh_interval=4``.
"""

_base_ = ['./ijepa_vit-tiny-p14_1xb2-10iter_oscd-pairs-56px_mr-only_cpu-smoke.py']

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

custom_hooks = [
    dict(type='LinearTeacherEMAHook'),
    dict(type='SpatialAffinityHook'),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]
