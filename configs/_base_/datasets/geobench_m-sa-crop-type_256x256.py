# GEO-Bench m-SA-crop-type (segmentation_v1.0; 10 classes, 256 x 256, Sentinel-2), read with
# h5py alone by GeoBenchSegDataset: one HDF5 file per sample (one dataset per band, named
# '02 - Blue' ... (undated), and 'label'), splits from default_partition.json (train /
# valid / test), statistics in band_stats.json. See docs/data_preparation.md.
# Types resolve in the mmseg scope (the experiment config sets default_scope='mmseg').
# Inputs are float32 in the stored scale; 256 is a multiple of the 16-px patch (no padding).
_base_ = ['./geobench_m-cashew-plant_256x256.py']

task = 'm-SA-crop-type'
data_root = 'data/geobench/segmentation_v1.0/m-SA-crop-type'
num_classes = 10  # GEO-Bench's class 0 ("No Data") is one of the 10
# the same pipelines, bands and splits as m-cashew-plant; only the task folder differs
train_dataloader = dict(dataset=dict(data_root=data_root, task=task))
val_dataloader = dict(dataset=dict(data_root=data_root, task=task))
test_dataloader = dict(dataset=dict(data_root=data_root, task=task))
