"""CPU smoke test of LatentMIM on 4-band input: the RGB smoke model with 4 bands.

Data: a folder of (H, W, 4) ``.npy`` (or GeoTIFF) Sentinel-2 DN tiles (B02, B03, B04,
B08), e.g. the OSCD crops the tests write; the 4-band recipe's per-band scaling,
statistics and cv2 crop, to 80 px (4 x 4 cells of 16 + 4 px).
"""

_base_ = ['./latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py']
num_bands = 4
img_size = 80
data_root = 'data/s2_4band_demo'

model = dict(
    backbone=dict(in_channels=num_bands),
    data_preprocessor=dict(
        _delete_=True,
        type='MultiBandDataPreProcessor',
        num_bands=num_bands,
        pixel_scale=10000,
        mean=[0.1373, 0.1089, 0.0962, 0.1204],
        std=[0.0184, 0.0225, 0.0301, 0.0512],
    ),
)

train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        extensions=('.npy', '.tif', '.tiff'),
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
    ),
)
