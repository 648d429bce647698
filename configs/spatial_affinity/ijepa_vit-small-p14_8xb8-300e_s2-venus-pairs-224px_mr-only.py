"""I-JEPA ViT-S/14 on the MR images of HR/MR pairs: the paper's "MR" model (method.md §2).

The host alone on 4-band (B2/B3/B4/B8) mid-resolution crops of 224 px, with the paper's
host hyper-parameters (predictor depth 12 at width 384, AdamW lr 1e-3 cosine, batch 64 =
8 x 8, wd 0.04, 300 epochs). The pairs (e.g. Sentinel-2 10 m with VENµS 5 m, s = 2) come
from ``PairedHRMRDataset`` (``<mr> <hr>`` per line of ``pairs.txt``) with the same
grid-aligned crop and flips as the SA model, so the three models see the same MR
crops; this one ignores the HR image. MR and HR are normalised with the same per-band
statistics (the 4-band recipe's OSCD figures; replace them with your data set's).
"""

_base_ = ['../ijepa/ijepa_vit-small-p14_8xb8-300e_s2-4band-224px.py']
num_bands = 4
img_size = 224
patch_size = 14
scale = 2
data_root = 'data/s2_venus_pairs'

train_pipeline = [
    dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
    dict(type='PairedRandomCrop', crop_size=img_size, patch_size=patch_size),
    dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackHRMRInputs'),
]

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PairedHRMRDataset',
        data_root=data_root,
        ann_file='pairs.txt',
        scale=scale,
        pipeline=train_pipeline,
    )
)
