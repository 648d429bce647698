# Unlabelled 4-band Sentinel-2 tiles (bands B02, B03, B04, B08 = blue, green, red, NIR,
# in this order; multi-band GeoTIFF or .npy (H, W, 4) of L1C DN), the I-JEPA crop.
dataset_type = 'UnlabeledImageDataset'
data_root = 'data/s2_4band'

train_pipeline = [
    dict(type='LoadMultiBandImageFromFile', num_bands=4, to_float32=True),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.3, 1.0), backend='cv2'),
    dict(type='PackInputs', meta_keys=['img_path']),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        extensions=('.tif', '.tiff', '.npy'),
        pipeline=train_pipeline,
    ),
)
