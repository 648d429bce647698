# ISPRS Vaihingen (6 classes, IRRG false colour), MMSeg's ISPRSDataset layout written by
# tools/dataset_converters/vaihingen.py (docs/data_preparation.md):
#   data_root/img_dir/train/*.png  512x512 crops of the 16 training areas, stride 256
#   data_root/img_dir/val/*.png    the 17 test areas WHOLE (about 2000x2500), for slide inference
#   data_root/ann_dir/{train,val}/*.png  0 = ignored (eroded boundary), 1..6 = classes
# Classes, pipelines (whole validation areas at their native size, slide inference by the
# model's test_cfg), dataloaders and metric: those of potsdam_512x512.py.
_base_ = ['./potsdam_512x512.py']

dataset_type = 'ISPRSDataset'
data_root = 'data/vaihingen'

train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
