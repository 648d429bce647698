# Unlabelled 4-band Sentinel-2 tiles (bands B02, B03, B04, B08 = blue, green, red, NIR,
# in this order; multi-band GeoTIFF or .npy (H, W, 4) of L1C DN), the I-JEPA crop.
# Dataset type and dataloader settings: those of ijepa_rgb-224px.py.
_base_ = ['./ijepa_rgb-224px.py']

data_root = 'data/s2_4band'

train_pipeline = [
    dict(type='LoadMultiBandImageFromFile', num_bands=4, to_float32=True),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.3, 1.0), backend='cv2'),
    dict(type='PackInputs', meta_keys=['img_path']),
]

train_dataloader = dict(
    dataset=dict(data_root=data_root, extensions=('.tif', '.tiff', '.npy'), pipeline=train_pipeline)
)
