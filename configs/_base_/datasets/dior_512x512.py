# DIOR horizontal-box detection (20 classes; 11,725 trainval / 11,738 test images of
# 800 x 800), in the dataset's own layout (see DIORDataset and docs/detection.md):
#   data/DIOR/JPEGImages-trainval, JPEGImages-test,
#   Annotations/Horizontal Bounding Boxes/*.xml, ImageSets/Main/{train,val,test}.txt
# Training on trainval (train + val), testing on test, as in the paper; the periodic
# validation during training also runs on test (MMDet's VOC0712 practice).
#
# Pixel convention: XML boxes are 1-based inclusive pixels; 1 is subtracted (MMDet's
# VOC convention) and both metrics count areas as (x2 - x1 + 1) * (y2 - y1 + 1).
# Box policy: partly outside -> clipped, fully outside / degenerate -> skipped, both
# counted and logged per split; a class name that is not DIOR's is a one-line error.
dataset_type = 'DIORDataset'
data_root = 'data/DIOR/'
img_scale = (512, 512)  # method.md 1.7: resize to 512 (800 -> 512, keep ratio)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # flips (method.md 1.7): horizontal and vertical, independently
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    # colour jitter: brightness, contrast, saturation, hue (MMDet's defaults)
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: the ground truth stays in original-image pixels, as the predictions
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='trainval',
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args,
    ),
)
test_dataloader = val_dataloader

# Metrics. The paper's figure is VOC mAP50 with area-based AP (all points), keys
# 'voc_area/mAP' (= 'voc_area/AP50'); MMDet's VOCMetric defaults to 11-point AP.
# COCO-style AP (IoU 0.50:0.95, 101 points) from the same boxes and the same pixel
# convention: keys 'coco/AP', 'coco/AP50', 'coco/AP75', 'coco/AP_small' ... (published
# DIOR numbers mix the two; say which one you quote).
voc_area_metric = dict(type='VOCMetric', metric='mAP', eval_mode='area', prefix='voc_area')
coco_style_metric = dict(type='CocoStyleAPMetric', max_dets=100, prefix='coco')
val_evaluator = voc_area_metric  # add the COCO-style one: [voc_area_metric, coco_style_metric]
test_evaluator = [voc_area_metric, coco_style_metric]
