"""CPU smoke test of the I-JEPA "MR" model on HR/MR pairs: a tiny ViT/14, 56 px MR crops.

Data: a ``PairedHRMRDataset`` folder, e.g. the simulated-scale OSCD pairs of
``pera_mm.testing.oscd_pairs.build_oscd_pairs`` (HR = the 10 m B2/B3/B4/B8 stack, MR =
it area-downsampled x2: real pixels, simulated scale). 10 iterations of batch 2; the
pairs are repeated so that a folder of a few pairs does not end an epoch (and pause the
iteration-based loop) every iteration: set ``train_dataloader.dataset.dataset.data_root``.
"""

_base_ = ['../ijepa/ijepa_vit-tiny-p14_1xb4-3iter_npy-4band-56px_cpu-smoke.py']
num_bands = 4
img_size = 56
patch_size = 14
max_iters = 10
data_root = 'data/oscd_pairs'

train_dataloader = dict(
    batch_size=2,
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
                dict(type='PairedRandomCrop', crop_size=img_size, patch_size=patch_size),
                dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
                dict(type='PackHRMRInputs'),
            ],
        ),
    ),
)

param_scheduler = [
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='lr',
        start_value=2e-4,
        final_value=1e-6,
        warmup=2,
        end=max_iters,
        by_epoch=False,
    ),
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.4,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters, by_epoch=False, max_keep_ckpts=1))
