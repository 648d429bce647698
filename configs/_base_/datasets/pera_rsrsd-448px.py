# Unlabelled remote-sensing tiles (RSRSD-5m layout: any folder tree of images, or
# an annotation file listing paths relative to data_root), PerA views and masks.
dataset_type = 'UnlabeledImageDataset'
data_root = 'data/rsrsd'

# The patch size of the whole config: the mask generator's grid here, and the
# backbone's through `backbone=dict(patch_size={{_base_.patch_size}})` in each
# experiment config (PerA checks once per step that the two grids agree).
patch_size = 16

# ImageNet statistics (RGB, 0-255). The released downstream code uses remote-sensing
# statistics instead: mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55].
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False,
)  # LoadRGBImageFromFile already yields RGB

train_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(
        type='PerAMultiCropViews',
        global_crop_size=448,
        local_crop_size=96,
        num_global_crops=2,
        num_local_crops=8,
        global_crop_scale=(0.4, 1.0),
        local_crop_scale=(0.05, 0.4),
        spatial_alignment=True,
    ),
    dict(type='DisjointMaskGenerator', patch_size=patch_size, mask_ratios=(0.2, 0.2, 0.6)),
    dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks'], meta_keys=['img_path']),
]

train_dataloader = dict(
    batch_size=24,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline),
)
