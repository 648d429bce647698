"""CPU smoke run of the linear probe: the fine-tuning smoke config with the ViT frozen.

``frozen_stages=4`` (all blocks of the tiny ViT, embeddings and final norm), SGD on the
head only, no colour jitter, as in the ViT-B linear-probe configs.
"""

_base_ = ['./pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py']

img_size = {{_base_.img_size}}

model = dict(backbone=dict(frozen_stages=4))

optim_wrapper = dict(
    _delete_=True,
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0),
)
param_scheduler = [dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False)]

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
