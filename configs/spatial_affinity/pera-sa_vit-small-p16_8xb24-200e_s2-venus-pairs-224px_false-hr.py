"""PerA + SA, the paper's "false HR" control: the HR image is the MR image upsampled.

As the SA model, but ``FalseHRFromMR`` replaces the HR image by the bicubic x2
interpolation of the whole MR image before the crops, so the HR teacher sees no detail
the MR image lacks (the HR crops are then windows of that interpolation).
"""

_base_ = ['./pera-sa_vit-small-p16_8xb24-200e_s2-venus-pairs-224px.py']

train_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type='LoadHRMRPairFromFile', num_bands={{_base_.num_bands}}, to_float32=True),
            dict(type='FalseHRFromMR', mode='bicubic'),
            {{_base_.sa_views}},
            {{_base_.masks}},
            {{_base_.sa_pack}},
        ]
    )
)
