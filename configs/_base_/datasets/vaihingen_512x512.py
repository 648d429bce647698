# ISPRS Vaihingen (6 classes, IRRG false colour), MMSeg's ISPRSDataset layout written by
# tools/dataset_converters/vaihingen.py (docs/data_preparation.md):
#   data_root/img_dir/train/*.png  512x512 crops of the 16 training areas, stride 256
#   data_root/img_dir/val/*.png    the 17 test areas WHOLE (about 2000x2500), for slide inference
#   data_root/ann_dir/{train,val}/*.png  0 = ignored (eroded boundary), 1..6 = classes
# Types resolve in the mmseg scope: the experiment config sets default_scope='mmseg'.
# Normalisation (mean/std, BGR->RGB) is NOT done here: it is the data_preprocessor
# of the model config, which must match the checkpoint's pretraining statistics.
dataset_type = 'ISPRSDataset'
data_root = 'data/vaihingen'
crop_size = (512, 512)
num_classes = 6
class_names = ('impervious_surface', 'building', 'low_vegetation', 'tree', 'car', 'clutter')

# The paper (method.md 1.7): flips + random resized crop, no colour jitter.
# Random resized crop = rescale by 0.5-2.0 then a random 512 crop (cat_max_ratio as
# MMSeg); flips = horizontal and vertical, each independently with probability 0.5
# (the four flip states, 'diagonal' being both, with 0.25 each).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=num_classes),
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(
        type='RandomFlip',
        prob=[0.25, 0.25, 0.25],
        direction=['horizontal', 'vertical', 'diagonal'],
    ),
    dict(type='PackSegInputs'),
]
# Whole validation areas at their native size; the model's test_cfg does the slide
# inference (mode='slide', crop_size=(512, 512)).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='CheckSegLabel', num_classes=num_classes)],
            [dict(type='PackSegInputs')],
        ],
    ),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

# aAcc, mIoU, mAcc, mF1, IoU.<class>, F1.<class> over all 6 classes, and
# mIoU_no_clutter / mF1_no_clutter over the 5 classes of the usual ISPRS figure.
val_evaluator = dict(
    type='IoUF1Metric',
    class_subsets=dict(
        no_clutter=['impervious_surface', 'building', 'low_vegetation', 'tree', 'car']
    ),
)
test_evaluator = val_evaluator
