# Unlabelled remote-sensing tiles (RSRSD-5m layout: any folder tree of images, or
# an annotation file listing paths relative to data_root), PerA views and masks.
dataset_type = 'UnlabeledImageDataset'
data_root = 'data/rsrsd'

# ImageNet statistics (RGB, 0-255). The released downstream code uses remote-sensing
# statistics instead: mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55].
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False)  # LoadRGBImageFromFile already yields RGB

view_cfg = dict(
    type='PerAMultiCropViews',
    global_crop_size=448,
    local_crop_size=96,
    num_global_crops=2,
    num_local_crops=8,
    global_crop_scale=(0.4, 1.0),
    local_crop_scale=(0.05, 0.4),
    spatial_alignment=True)
mask_cfg = dict(type='DisjointMaskGenerator', patch_size=16, mask_ratios=(0.2, 0.2, 0.6))

train_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    view_cfg,
    mask_cfg,
    dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks'], meta_keys=['img_path']),
]

train_dataloader = dict(
    batch_size=24,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
