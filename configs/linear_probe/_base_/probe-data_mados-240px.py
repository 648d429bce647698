# The data of configs/_base_/datasets/mados_240x240.py for the linear probes,
# restated with its `num_classes` named `dataset_num_classes`: MMEngine refuses a key
# defined in two sibling bases, and the probe bases define `num_classes` too. Everything
# else is the dataset base verbatim except the band-statistics comment
# (tests/test_tools/test_linear_probe_benchmarks.py checks it).
# MADOS (Marine Debris and Oil Spill; Sentinel-2, 15 classes, 240 x 240 crops), the Zenodo
# release layout (record 10664073) read by MADOSDataset: Scene_<N>/10/Scene_<N>_L2R_rhorc_
# <nm>_<crop>.tif per 10 m band (B2 492, B3 560 (S2A) or 559 (S2B), B4 665, B8 833 nm),
# Scene_<N>/10/Scene_<N>_L2R_cl_<crop>.tif classes, splits/{train,val,test}_X.txt.
# Labels: file 1..15 -> 0..14; 0 (unlabelled) and pixels NaN in any band -> 255 (ignored).
# Types resolve in the mmseg scope (the experiment config sets default_scope='mmseg').
# 240 = 15 x 16: a multiple of the 16-px patch (no padding).
dataset_type = 'MADOSDataset'
data_root = 'data/MADOS'
bands = ['B2', 'B3', 'B4', 'B8']
dataset_num_classes = 15
crop_size = (240, 240)
# Reflectance statistics of B2/B3/B4/B8 from the MADOS authors' loader
# (github.com/gkakogeorgiou/mados, utils/dataset.py @ c20a7e9: bands_mean / bands_std,
# entries 2, 3, 4 and 8 of their 11 bands), for the model's data_preprocessor.
band_mean = [0.05223386, 0.04381474, 0.0357083, 0.03566642]
band_std = [0.03432253, 0.0354812, 0.0375769, 0.05545856]

# NaN pixels are filled with the band means (0 after normalisation), as the authors impute.
train_pipeline = [
    dict(type='LoadMADOSSample', nan_fill=band_mean),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadMADOSSample', nan_fill=band_mean),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', bands=bands,
        pipeline=train_pipeline,
    ),
)  # fmt: skip
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='val', bands=bands,
        pipeline=test_pipeline,
    ),
)  # fmt: skip
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='test', bands=bands,
        pipeline=test_pipeline,
    ),
)  # fmt: skip
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
