"""CPU smoke test of I-JEPA (RGB): a tiny ViT/14 on 56 px crops of the demo tiles.

Data: `python tools/misc/make_demo_data.py data/pera_demo`. A 4x4 patch grid, so the
masks are scaled to it (targets 0.2-0.3 of the grid, min_keep 1); predictor depth 1;
3 iterations with the full recipe's schedules, shortened.
"""

_base_ = ['./ijepa_vit-small-p14_8xb8-300e_rgb-224px.py']
img_size = 56
data_root = 'data/pera_demo'

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128
        ),
        img_size=img_size,
    ),
    neck=dict(embed_dims=32, num_layers=1),
    mask_sampler=dict(target_scale=(0.2, 0.3), min_keep=1),
)

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadMultiBandImageFromFile', num_bands=3),
            dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.3, 1.0)),
            dict(type='PackInputs', meta_keys=['img_path']),
        ],
    ),
)

param_scheduler = [
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='lr',
        start_value=2e-4,
        final_value=1e-6,
        warmup=1,
        end=3,
        by_epoch=False,
    ),
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.4,
        end=3,
        by_epoch=False,
    ),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=3, by_epoch=False, max_keep_ckpts=1)
)
log_processor = dict(window_size=1, by_epoch=False)
