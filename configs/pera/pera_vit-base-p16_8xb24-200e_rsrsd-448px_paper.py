"""PerA ViT-B/16 with the paper's choices instead of the released code's.

Paper section 4.1: masks s:l:t = 0.3:0.2:0.5; loss weights C1=1.0 (cls),
C2=0.1 (pixel MSE), C3=0.01 (KoLeo); the pixel target is the un-augmented crop
(teacher views with colour jitter off serve as that target).
"""

_base_ = ['./pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

model = dict(
    pixel_loss=dict(loss_weight=0.1), koleo_loss=dict(loss_weight=0.01), pixel_target='teacher'
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
                teacher_color=dict(jitter_prob=0.0, gray_prob=0.0),
            ),
            dict(
                type='DisjointMaskGenerator',
                patch_size={{_base_.patch_size}},
                mask_ratios=(0.3, 0.2, 0.5),
            ),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ]
    )
)
