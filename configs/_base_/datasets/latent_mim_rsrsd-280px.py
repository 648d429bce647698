# Unlabelled tiles, the LatentMIM train transform (main_lmim.py): RandomResizedCrop to
# 14 x (16 + 4) = 280 px, scale (0.2, 1), bicubic; horizontal flip; ImageNet
# normalisation in the model's data preprocessor.
dataset_type = 'UnlabeledImageDataset'
data_root = 'data/rsrsd'
img_size = 280

train_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        interpolation='bicubic',
        backend='pillow',
    ),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=['img_path']),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline),
)
