"""Linear probe of the frozen PerA ViT-B/16 teacher on UC Merced, 80 % / 20 %, 512 px.

The linear-probe settings of the AID linear config (ours; section 1.7 gives none) on the
UCM data of the UCM fine-tuning config.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_ucm-tr80-512px.py']

img_size = {{_base_.img_size}}
max_epochs = 100

model = dict(backbone=dict(drop_path_rate=0.0, frozen_stages=12))

optim_wrapper = dict(
    _delete_=True,
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0),
)
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='RandomFlip', prob=0.5, direction='vertical'),
            dict(type='PackInputs'),
        ]
    )
)
