"""CPU smoke run of scene-classification fine-tuning (tests, CI, quick checks).

The AID fine-tuning config at a tiny size: the ViT of ``pera_mm.testing.TINY_ARCH``
(embed 64, 4 blocks, 2 heads, mlp 128), 64 px images, 2 data workers off, a few
iterations, AdamW at lr 1e-3 with a 2-iteration warm-up. The data root and everything
that sizes the run is a variable below; the image folder, split files, classes file and
class count are those of _base_/datasets/aid_512px.py. Override them with --cfg-options
on the fields that use them (e.g. ``train_dataloader.dataset.data_root=...``), or
inherit this file and restate the dataloaders. Tests build the split on the fly with
``tools/dataset_converters/split_scene_dataset.py`` from ../shared/data/AID_150px/AID
and make the PerA checkpoint with ``pera_mm.testing.make_pera_checkpoint``.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_aid-tr20-512px.py']

data_root = 'data/aid_150px'
img_size = 64
batch_size = 8
max_iters = 6
pera_checkpoint = 'work_dirs/pera_tiny_64px.pth'
tiny_arch = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **tiny_arch),
        img_size=img_size,
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pera_checkpoint),
    ),
    head=dict(in_channels=tiny_arch['embed_dims']),
)

train_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='NumpyToPIL', to_rgb=False),
            dict(
                type='torchvision/ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1,
            ),
            dict(type='PILToNumpy', to_bgr=False),
        ],
    ),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    # an iteration-based run: without it MMEngine sleeps 2 s at every dataloader restart
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline),
)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-4,
        warmup=2,
        start_factor=0.1,
        by_epoch=False,
    ),
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters
)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1),
)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, deterministic=False)
