"""CPU demo: PerA ViT-Tiny/16 on the generated demo tiles (2 CPU cores, minutes).

Data: `python tools/misc/make_demo_data.py data/pera_demo` (procedural
remote-sensing-like tiles made by this repo). 96 px global / 48 px local crops
(6x6 and 3x3 patch grids), 2 global + 4 local pairs, a small prototype layer.
"""
_base_ = [
    '../_base_/models/pera_vit-base-p16.py',
    '../_base_/datasets/pera_rsrsd-448px.py',
    '../_base_/schedules/pera_adamw-200e.py',
    '../_base_/default_runtime.py',
]
max_epochs = 20
warmup_epochs = 5
data_root = 'data/pera_demo'

model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(arch='tiny', img_size=96, drop_path_rate=0.1),
    projector=dict(in_channels=192, out_channels=4096, hidden_channels=512,
                   bottleneck_channels=128),
    predictor=dict(in_channels=192, hidden_channels=512, bottleneck_channels=128),
    cls_loss=dict(out_channels=4096))

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(type='PerAMultiCropViews', global_crop_size=96, local_crop_size=48,
                 num_global_crops=2, num_local_crops=4, global_crop_scale=(0.4, 1.0),
                 local_crop_scale=(0.1, 0.4)),
            dict(type='DisjointMaskGenerator', patch_size=16, mask_ratios=(0.2, 0.2, 0.6)),
            dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks'],
                 meta_keys=['img_path']),
        ]))

optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='WarmupCosineParamScheduler', param_name='lr', final_value=1e-6,
         warmup=warmup_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='WarmupCosineParamScheduler', param_name='weight_decay', final_value=0.2,
         by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
custom_hooks = [
    dict(type='TeacherEMAHook', momentum=0.992, end_momentum=1.0),
    dict(type='TeacherTemperatureHook', start_temp=0.04, end_temp=0.05, warmup_epochs=30),
    dict(type='CenterUpdateHook'),
    dict(type='CollapseMonitorHook', max_cls_cosine=0.6, min_cls_erank=2.0, window=10),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=10, max_keep_ckpts=2))
