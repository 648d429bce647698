# Unlabelled RGB tiles (any folder tree of images, or an annotation file), the
# reference's I-JEPA augmentation: a random resized crop of scale 0.3-1.0, no flip,
# no colour jitter.
dataset_type = 'UnlabeledImageDataset'
data_root = 'data/rsrsd'

train_pipeline = [
    dict(type='LoadMultiBandImageFromFile', num_bands=3),
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
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline),
)
