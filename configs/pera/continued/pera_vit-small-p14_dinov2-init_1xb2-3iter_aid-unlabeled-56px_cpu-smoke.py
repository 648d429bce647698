"""CPU smoke test of continued PerA pretraining from DINOv2 ViT-S/14 weights.

The full ViT-S/14 of the 224 px recipe on 56 px globals (4x4 grid) and 28 px
locals (2x2 grid) of the unlabeled AID tiles (../shared/data/AID_unlabeled),
batch 2, 2 global + 2 local pairs, narrow fresh heads, 3 iterations. Convert
the weights for this grid with `--img-size 56`.
"""

_base_ = ['./pera_vit-small-p14_dinov2-init_8xb32-20e_rsrsd-224px.py']

img_size = 56
data_root = '../shared/data/AID_unlabeled'
pretrained = 'checkpoints/vit_s14_dinov2_56px_pera.pth'

model = dict(
    backbone=dict(img_size=img_size, init_cfg=dict(checkpoint=pretrained)),
    projector=dict(out_channels=256, hidden_channels=128, bottleneck_channels=64),
    predictor=dict(hidden_channels=128, bottleneck_channels=64),
)

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='PerAMultiCropViews',
                global_crop_size=img_size,
                local_crop_size=28,
                num_global_crops=2,
                num_local_crops=2,
                global_crop_scale=(0.4, 1.0),
                local_crop_scale=(0.1, 0.4),
                spatial_alignment=True,
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

param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=1,
        start_factor=0.0,
        end=3,
        by_epoch=False,
    ),
    dict(
        type='WarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.2,
        end=3,
        by_epoch=False,
    ),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3)
teacher_temp = dict(warmup_epochs=None, warmup_iters=2)
collapse_monitor = dict(window=3)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=3, by_epoch=False, max_keep_ckpts=1)
)
log_processor = dict(window_size=1, by_epoch=False)
