"""CPU smoke test of LatentMIM: a tiny ViT/16 on 80 px demo tiles (4 x 4 cells of 20 px).

Data: `python tools/misc/make_demo_data.py data/pera_demo`. 2 of 16 patches visible,
decoder depth 1, one epoch; the schedule of the full recipe, shortened.
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py']
max_epochs = 1
data_root = 'data/pera_demo'

model = dict(
    backbone=dict(
        embed_dims=64, num_layers=2, num_heads=2, projector=dict(mlp_dim=128, mlp_depth=3)
    ),
    neck=dict(embed_dims=32, num_layers=1, num_heads=2),
    num_visible=2,
)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='RandomResizedCrop',
                scale=80,
                crop_ratio_range=(0.2, 1.0),
                interpolation='bicubic',
                backend='pillow',
            ),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs', meta_keys=['img_path']),
        ],
    ),
)

optim_wrapper = dict(type='AutoAmpOptimWrapper', dtype='bfloat16')
param_scheduler = [
    dict(
        type='WarmupCosineFloorParamScheduler',
        param_name='lr',
        floor_factor=0.25,
        warmup=0.5,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=1)
