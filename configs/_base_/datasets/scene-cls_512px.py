# A folder-per-class scene-classification dataset split by
# `tools/dataset_converters/split_scene_dataset.py` (annotation lines "relative/path label"
# and a classes file), images resized to img_size (512 in the paper, method.md section 1.7).
# The dataset configs aid_512px.py / ucm_512px.py inherit this and set the paths. The test
# split is also the validation split (the benchmarks have no official validation set).
dataset_type = 'SceneClassificationDataset'
data_root = 'data/scenes'
data_prefix = 'images'  # class folders: data_root/data_prefix/<Class>/
class_file = 'meta/classes.txt'  # relative to data_root
train_ann_file = 'meta/split-80-20_seed0_train.txt'  # relative to data_root
test_ann_file = 'meta/split-80-20_seed0_test.txt'
num_classes = None  # set by each dataset config (head and preprocessor)
img_size = 512
batch_size = 16  # per GPU; the paper's total batch is 16

# The PerA pretraining statistics: ImageNet mean/std (RGB, 0-255), as in
# _base_/datasets/pera_rsrsd-448px.py. The authors' downstream code uses
# remote-sensing statistics instead: mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55].
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False,  # LoadRGBImageFromFile already yields RGB
)

# "flips, random crop, colour jitter" (section 1.7). Our reading: a random-resized
# crop of 50-100 % of the image, resized to img_size; horizontal and vertical flips
# (p=0.5 each, as in pretraining); colour jitter of the pretraining strengths
# (0.4/0.4/0.2/0.1, torchvision's RGB implementation) with p=0.8.
train_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandomApply',
        prob=0.8,
        transforms=[
            dict(type='NumpyToPIL', to_rgb=False),
            dict(
                type='torchvision/ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1,
            ),
            dict(type='PILToNumpy', to_bgr=False),
        ],
    ),
    dict(type='PackInputs'),
]
# every image resized to img_size x img_size (off-size images included)
test_pipeline = [
    dict(type='LoadRGBImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=False),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file=train_ann_file,
        classes=class_file,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=data_prefix,
        ann_file=test_ann_file,
        classes=class_file,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
# overall accuracy (OA) = top-1 accuracy, reported as accuracy/top1 (percent)
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
