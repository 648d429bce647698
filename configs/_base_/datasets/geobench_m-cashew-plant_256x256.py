# GEO-Bench m-cashew-plant (segmentation_v1.0; 7 classes, 256 x 256, Sentinel-2), read with
# h5py alone by GeoBenchSegDataset: one HDF5 file per sample (one dataset per band, named
# '02 - Blue_<YYYY-MM-DD>' ..., and 'label'), splits from default_partition.json (train /
# valid / test), statistics in band_stats.json. See docs/data_preparation.md.
# Types resolve in the mmseg scope (the experiment config sets default_scope='mmseg').
# Inputs are float32 in the stored scale; 256 is a multiple of the 16-px patch (no padding).
dataset_type = 'GeoBenchSegDataset'
task = 'm-cashew-plant'
data_root = 'data/geobench/segmentation_v1.0/m-cashew-plant'
bands = ['B2', 'B3', 'B4', 'B8']
num_classes = 7  # GEO-Bench's class 0 ("no data") is one of the 7
crop_size = (256, 256)
# Per-band normalisation of B2/B3/B4/B8 for the model's data_preprocessor (mean/std):
# None here: the linear-probe configs read the 'mean' and 'std' of '02 - Blue',
# '03 - Green', '04 - Red', '08 - NIR' from <data_root>/band_stats.json when the model is
# built (model.band_stats); other configs set them, and a probe without them fails in one line.
band_mean = None
band_std = None

# Linear probing: horizontal flips only; evaluation on whole 256 x 256 samples.
train_pipeline = [
    dict(type='LoadGeoBenchSample'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadGeoBenchSample'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, task=task, split='train', bands=bands,
        pipeline=train_pipeline,
    ),
)  # fmt: skip
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, task=task, split='valid', bands=bands,
        pipeline=test_pipeline,
    ),
)  # fmt: skip
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, task=task, split='test', bands=bands,
        pipeline=test_pipeline,
    ),
)  # fmt: skip
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
