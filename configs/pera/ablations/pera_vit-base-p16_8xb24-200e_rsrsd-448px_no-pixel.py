"""Ablation: disjoint masks without pixel prediction (s:t = 0.4:0.6, no mask tokens)."""

_base_ = ['../pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

model = dict(predictor=None, pixel_loss=None)
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
            ),
            dict(
                type='DisjointMaskGenerator',
                patch_size={{_base_.patch_size}},
                mask_ratios=(0.4, 0.0, 0.6),
            ),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ]
    )
)
