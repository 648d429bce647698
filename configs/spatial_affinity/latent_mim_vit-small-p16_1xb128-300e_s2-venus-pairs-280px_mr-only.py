"""LatentMIM ViT-S/16 on the MR images of HR/MR pairs: the paper's "MR" model (method.md §2).

The host alone on 4-band (B2/B3/B4/B8) mid-resolution crops of 280 px (14 x 14 cells of
a 16 px window and a 4 px gap), with the paper's host hyper-parameters (decoder depth 3,
AdamW lr 1.5e-4, batch 128, wd 0.05, 300 epochs). Pairs from ``PairedHRMRDataset`` with
the grid-aligned paired crop and flips of the SA model (this model ignores the HR image);
4-band inputs through ``MultiBandDataPreProcessor`` with the per-band statistics of the
4-band recipe (L1C DN / 10000; replace them with your data set's).
"""

_base_ = ['../latent_mim/latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py']
num_bands = 4
img_size = 280
cell = 16 + 4
scale = 2
data_root = 'data/s2_venus_pairs'

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
    dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
    dict(type='PairedRandomCrop', crop_size=img_size, patch_size=cell),
    dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'),
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
