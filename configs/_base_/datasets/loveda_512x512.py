# LoveDA (7 classes, 1024x1024 RGB, official train 2522 / val 1669 / test 1796 images),
# MMSeg's LoveDADataset layout written by tools/dataset_converters/loveda.py
# (docs/data_preparation.md):
#   data_root/img_dir/{train,val,test}/*.png, data_root/ann_dir/{train,val}/*.png
#   (raw LoveDA codes: 0 = no-data, ignored; 1..7 = classes)
# Types resolve in the mmseg scope: the experiment config sets default_scope='mmseg'.
# Normalisation (mean/std, BGR->RGB) is NOT done here: it is the data_preprocessor
# of the model config, which must match the checkpoint's pretraining statistics.
# Test-server export: loveda_512x512_test-server.py (predictions on img_dir/test).
dataset_type = 'LoveDADataset'
data_root = 'data/loveDA'
crop_size = (512, 512)
num_classes = 7
class_names = ('background', 'building', 'road', 'water', 'barren', 'forest', 'agricultural')

# The paper (method.md 1.7): flips + random resized crop, no colour jitter.
# Random resized crop = rescale the 1024 image by 0.5-2.0 then a random 512 crop
# (cat_max_ratio as MMSeg); flips = horizontal and vertical, each independently with
# probability 0.5 (the four flip states, 'diagonal' being both, with 0.25 each).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=num_classes),
    dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(
        type='RandomFlip',
        prob=[0.25, 0.25, 0.25],
        direction=['horizontal', 'vertical', 'diagonal'],
    ),
    dict(type='PackSegInputs'),
]
# Whole 1024x1024 images at their native size; the model's test_cfg does the slide
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
# Evaluated on the official val split (the test split has no public labels).
test_dataloader = val_dataloader

# aAcc, mIoU, mAcc, mF1, IoU.<class>, F1.<class> over the 7 classes.
val_evaluator = dict(type='IoUF1Metric')
test_evaluator = val_evaluator
