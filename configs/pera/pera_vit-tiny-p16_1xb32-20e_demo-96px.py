"""CPU demo: PerA ViT-Tiny/16 on the generated demo tiles (2 CPU cores, minutes).

Data: `python tools/misc/make_demo_data.py data/pera_demo` (procedural
remote-sensing-like tiles made by this repo). 96 px global / 48 px local crops
(6x6 and 3x3 patch grids), 2 global + 4 local pairs, a small prototype layer.
The teacher temperature warms up over the first half of the 20 epochs.
"""

_base_ = [
    '../_base_/models/pera_vit-tiny-p16.py',
    '../_base_/datasets/pera_rsrsd-448px.py',
    '../_base_/schedules/pera_adamw-200e.py',
    '../_base_/default_runtime.py',
]
max_epochs = 20
warmup_epochs = 5
data_root = 'data/pera_demo'

model = dict(
    data_preprocessor={{_base_.data_preprocessor}}, backbone=dict(patch_size={{_base_.patch_size}})
)

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='PerAMultiCropViews',
                global_crop_size=96,
                local_crop_size=48,
                num_global_crops=2,
                num_local_crops=4,
                global_crop_scale=(0.4, 1.0),
                local_crop_scale=(0.1, 0.4),
            ),
            dict(
                type='DisjointMaskGenerator',
                patch_size={{_base_.patch_size}},
                mask_ratios=(0.2, 0.2, 0.6),
            ),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ],
    ),
)

optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=warmup_epochs,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
    dict(
        type='WarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.2,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
teacher_temp = dict(start_temp=0.04, end_temp=0.05, warmup_epochs=10)
collapse_monitor = dict(window=10)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=10, max_keep_ckpts=2))
