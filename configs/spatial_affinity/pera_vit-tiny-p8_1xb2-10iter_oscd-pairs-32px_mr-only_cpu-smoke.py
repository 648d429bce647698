"""CPU smoke test of the PerA "MR" model on HR/MR pairs: a tiny 4-band ViT/8, 32 px crops.

Data: a ``PairedHRMRDataset`` folder, e.g. the simulated-scale OSCD pairs of
``pera_mm.testing.oscd_pairs.build_oscd_pairs`` (HR = the 10 m B2/B3/B4/B8 stack, MR =
it area-downsampled x2: real pixels, simulated scale). PerA's views of the MR image:
2 global pairs of 32 px (4 x 4 patches) and 2 local pairs of 16 px, colour off (4
bands). lr 1e-3 (2-iteration warm-up, cosine) and a constant teacher temperature 0.04.
10 iterations of batch 2; the pairs are repeated so that a folder of a few pairs
does not end an epoch every iteration: set ``train_dataloader.dataset.dataset.data_root``.
"""

_base_ = ['./pera_vit-small-p16_8xb24-200e_s2-venus-pairs-224px_mr-only.py']
num_bands = 4
img_size = 32
patch_size = 8
max_iters = 10
data_root = 'data/oscd_pairs'

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96),
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=0.0,
    ),
    projector=dict(out_channels=256, hidden_channels=64, bottleneck_channels=32),
    predictor=dict(hidden_channels=64, bottleneck_channels=32),
)

views = dict(
    type='PairedPerAMultiCropViews',
    num_bands=num_bands,
    with_hr=False,
    global_crop_size=img_size,
    local_crop_size=16,
    num_global_crops=2,
    num_local_crops=2,
    global_crop_scale=(0.4, 1.0),
    local_crop_scale=(0.1, 0.4),
    student_color={{_base_.colour_off}},
    teacher_color={{_base_.colour_off}},
)
masks = dict(type='DisjointMaskGenerator', patch_size=patch_size, mask_ratios=(0.2, 0.2, 0.6))
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=20,
        dataset=dict(
            type='PairedHRMRDataset',
            data_root=data_root,
            ann_file='pairs.txt',
            scale=2,
            pipeline=[
                dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
                views,
                masks,
                dict(
                    type='PackInputs',
                    algorithm_keys=['global_masks', 'local_masks'],
                    meta_keys={{_base_.meta_keys}},
                ),
            ],
        ),
    ),
)

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=2,
        start_factor=0.0,
        end=max_iters,
        by_epoch=False,
    ),
    dict(
        type='WarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.2,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
# a constant teacher temperature: a rising one raises the DINO targets' entropy (and the
# loss) within 10 iterations, which would hide whether the step trains
teacher_temp = dict(start_temp=0.04, end_temp=0.04, warmup_iters=1)
collapse_monitor = dict(window=5)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=max_iters, by_epoch=False, max_keep_ckpts=1),
)
