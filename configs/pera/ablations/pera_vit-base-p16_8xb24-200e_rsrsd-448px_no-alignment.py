"""Ablation: student and teacher views from independent crops/flips (no spatial alignment)."""

_base_ = ['../pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

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
            ),
            dict(
                type='DisjointMaskGenerator',
                patch_size={{_base_.patch_size}},
                mask_ratios=(0.2, 0.2, 0.6),
            ),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ]
    )
)
