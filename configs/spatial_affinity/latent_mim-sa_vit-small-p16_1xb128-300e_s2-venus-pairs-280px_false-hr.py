"""LatentMIM + SA, the paper's "false HR" control: the HR image is the MR crop upsampled.

As the SA model, but ``FalseHRFromMR`` replaces each HR crop by the bicubic x2
interpolation of its MR crop.
"""

_base_ = ['./latent_mim-sa_vit-small-p16_1xb128-300e_s2-venus-pairs-280px.py']
num_bands = 4
img_size = 280
cell = 16 + 4

train_dataloader = dict(
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
