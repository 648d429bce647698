"""CPU smoke test of the LatentMIM "MR" model on HR/MR pairs: a tiny ViT/16, 80 px MR crops.

4 x 4 cells of 20 px, 2 of 16 patches visible, decoder depth 1; 10 iterations of batch 2
on a ``PairedHRMRDataset`` folder, e.g. the simulated-scale OSCD pairs of
``pera_mm.testing.oscd_pairs.build_oscd_pairs`` (real pixels, simulated scale). The pairs
are repeated so that a folder of a few pairs does not end an epoch (and pause the
iteration-based loop) every iteration: set ``train_dataloader.dataset.dataset.data_root``.
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_s2-venus-pairs-280px_mr-only.py']
num_bands = 4
img_size = 80
cell = 16 + 4
max_iters = 10
data_root = 'data/oscd_pairs'

model = dict(
    backbone=dict(
        embed_dims=64, num_layers=2, num_heads=2, projector=dict(mlp_dim=128, mlp_depth=3)
    ),
    neck=dict(embed_dims=32, num_layers=1, num_heads=2),
    num_visible=2,
)

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
                dict(type='PairedRandomCrop', crop_size=img_size, patch_size=cell),
                dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackHRMRInputs'),
            ],
        ),
    ),
)

optim_wrapper = dict(type='AutoAmpOptimWrapper', dtype='bfloat16')
param_scheduler = [
    dict(
        type='WarmupCosineFloorParamScheduler',
        param_name='lr',
        floor_factor=0.25,
        warmup=2,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=max_iters, by_epoch=False, max_keep_ckpts=1),
)
log_processor = dict(window_size=1, by_epoch=False)
