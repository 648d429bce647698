"""I-JEPA ViT-S/14 on 4-band Sentinel-2 tiles (B02, B03, B04, B08), the paper's settings.

Inputs are L1C DN: scaled by 1/10000 to reflectance, then normalised per band with the
statistics of the OSCD crops of the parity record (../shared/design/parity-ijepa.md);
replace them with your data set's. Everything else as the RGB config.
"""

_base_ = [
    '../_base_/models/ijepa_vit-small-p14.py',
    '../_base_/datasets/ijepa_s2-4band-224px.py',
    '../_base_/schedules/ijepa_adamw-300e.py',
    '../_base_/default_runtime.py',
]
num_bands = 4

model = dict(
    backbone=dict(in_channels=num_bands),
    data_preprocessor=dict(
        num_bands=num_bands,
        pixel_scale=10000,
        mean=[0.1373, 0.1089, 0.0962, 0.1204],
        std=[0.0184, 0.0225, 0.0301, 0.0512],
    ),
)
