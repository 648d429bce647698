"""LatentMIM ViT-S/16 on 4-band Sentinel-2 tiles (B02, B03, B04, B08), the paper's settings.

As the RGB config (method.md section 2: decoder depth 3, lr 1.5e-4, batch 128, weight
decay 0.05, 300 epochs, 280 px = 14 x 14 cells of 16 + 4 px, 20 visible patches), on
multi-band GeoTIFF or .npy (H, W, 4) tiles of L1C DN: scaled by 1/10000 to reflectance,
then normalised per band with the statistics of the OSCD crops of the I-JEPA parity
record (../shared/design/parity-ijepa.md), as the I-JEPA 4-band config; replace them
with your data set's. The crop is resized with cv2 (Pillow holds at most 3 float bands).
"""

_base_ = ['./latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py']
num_bands = 4
img_size = 280
data_root = 'data/s2_4band'

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

train_pipeline = [
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
]

train_dataloader = dict(
    dataset=dict(data_root=data_root, extensions=('.tif', '.tiff', '.npy'), pipeline=train_pipeline)
)
