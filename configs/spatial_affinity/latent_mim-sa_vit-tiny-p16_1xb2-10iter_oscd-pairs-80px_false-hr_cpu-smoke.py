"""CPU smoke test of LatentMIM + SA with the "false HR" control (simulated-scale OSCD pairs).

As the SA smoke model, but ``FalseHRFromMR`` replaces each HR crop by the bicubic x2
interpolation of its MR crop, so the HR teacher sees no detail the MR crop lacks.
"""

_base_ = ['./latent_mim-sa_vit-tiny-p16_1xb2-10iter_oscd-pairs-80px_cpu-smoke.py']
num_bands = 4
img_size = 80
cell = 16 + 4

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            pipeline=[
                dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
                dict(type='PairedRandomCrop', crop_size=img_size, patch_size=cell),
                dict(type='FalseHRFromMR', mode='bicubic'),
                dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackHRMRInputs'),
            ]
        )
    )
)
