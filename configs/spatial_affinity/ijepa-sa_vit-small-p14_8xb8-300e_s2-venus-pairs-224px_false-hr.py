"""I-JEPA + SA, the paper's "false HR" control: the HR image is the MR crop upsampled.

As the SA model, but ``FalseHRFromMR`` replaces each HR crop by the bicubic x2
interpolation of its MR crop, so the HR teacher sees no detail the MR image lacks.
"""

_base_ = ['./ijepa-sa_vit-small-p14_8xb8-300e_s2-venus-pairs-224px.py']
num_bands = 4
img_size = 224
patch_size = 14

train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
            dict(type='PairedRandomCrop', crop_size=img_size, patch_size=patch_size),
            dict(type='FalseHRFromMR', mode='bicubic'),
            dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
            dict(type='PackHRMRInputs'),
        ]
    )
)
