"""LatentMIM ViT-S/16 pretrained on the HR images of the pairs: the paper's "HR" model.

The host alone on the high-resolution side (the ``hr/`` folder of the pair set): 4-band
random resized 280 px crops (bicubic) and horizontal flips as the LatentMIM recipe;
evaluated on MR images like the other two models.
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_s2-venus-pairs-280px_mr-only.py']
num_bands = 4
img_size = 280
data_root = 'data/s2_venus_pairs'

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='UnlabeledImageDataset',
        data_root=data_root,
        data_prefix=dict(img_path='hr'),
        extensions=('.tif', '.tiff', '.npy'),
        pipeline=[
            dict(type='LoadMultiBandImageFromFile', num_bands=num_bands, to_float32=True),
            dict(
                type='RandomResizedCrop',
                scale=img_size,
                crop_ratio_range=(0.2, 1.0),
                interpolation='bicubic',
                backend='cv2',
            ),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs', meta_keys=['img_path']),
        ],
    )
)
