"""DINOv2-style baseline in the PerA framework (the performance and ablation baseline).

``DINOv2Baseline``: independent crops per view, full views for the teacher, iBOT
block masks on the student's global crops (mask tokens at the input), DINO loss
between every student crop and the teacher's other global crops, iBOT patch
loss at masked patches, KoLeo on the backbone cls token; no pixel prediction.
"""

_base_ = [
    '../../_base_/models/dinov2-baseline_vit-base-p16.py',
    '../../_base_/datasets/pera_rsrsd-448px.py',
    '../../_base_/schedules/pera_adamw-200e.py',
    '../../_base_/default_runtime.py',
]
model = dict(
    data_preprocessor={{_base_.data_preprocessor}}, backbone=dict(patch_size={{_base_.patch_size}})
)
train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='PerAMultiCropViews',
                global_crop_size=448,
                local_crop_size=96,
                num_global_crops=2,
                num_local_crops=8,
                spatial_alignment=False,
                teacher_color=dict(jitter_prob=0.72, gray_prob=0.08),
            ),
            dict(type='DisjointMaskGenerator', patch_size={{_base_.patch_size}}, mode='block'),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ]
    )
)
