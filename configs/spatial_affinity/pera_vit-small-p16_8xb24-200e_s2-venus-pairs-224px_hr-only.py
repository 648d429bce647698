"""PerA ViT-S/16 pretrained on the HR images of the pairs: the "HR" model (method.md §2).

The host alone on the high-resolution side of the pairs (the ``hr/`` folder of the pair
set, 4-band ``.tif`` / ``.npy``), PerA's views with the MR model's crop sizes (224 px
globals of random resized boxes, colour off on 4 bands); it is evaluated on MR images
like the other two models. Hyper-parameters as the MR model.
"""

_base_ = ['./pera_vit-small-p16_8xb24-200e_s2-venus-pairs-224px_mr-only.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UnlabeledImageDataset',
        data_root={{_base_.data_root}},
        data_prefix=dict(img_path='hr'),
        extensions=('.tif', '.tiff', '.npy'),
        pipeline=[
            dict(
                type='LoadMultiBandImageFromFile', num_bands={{_base_.num_bands}}, to_float32=True
            ),
            {{_base_.views}},
            {{_base_.masks}},
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path', 'global_crop_boxes'],
            ),
        ],
    )
)
