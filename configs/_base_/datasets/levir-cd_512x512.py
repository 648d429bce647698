# LEVIR-CD, official layout {train,val,test}/{A,B,label}: 445 / 64 / 128 pairs of 1024 x 1024
# tiles (0.5 m), 0/255 PNG masks (read as 0/1). Our bi-temporal loading (PIL; rasterio for
# GeoTIFFs when installed): both dates are stacked into one 6-band array, so every geometric
# transform moves the two dates and the label by the same pixels.
# Training (method.md 1.7): random resized crop to 512 + horizontal/vertical flips, no colour
# jitter. Test protocol: the whole 1024 tiles, predicted by sliding 512 windows (the model's
# test_cfg, set in the experiment config; see the *_test-precut config for pre-cut crops).
dataset_type = 'LEVIRCDChangeDataset'
data_root = 'data/LEVIR-CD'
crop_size = (512, 512)

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    # scale range: our choice (the paper names the transform only); 0.25 of a 1024 tile is a
    # 512 crop at the native 0.5 m, 1.0 the whole tile at half resolution
    dict(type='BitemporalRandomResizedCrop', size=crop_size, scale=(0.25, 1.0)),
    dict(type='BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train/A', img_path_b='train/B', seg_map_path='train/label'),
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
        data_prefix=dict(img_path='val/A', img_path_b='val/B', seg_map_path='val/label'),
        pipeline=test_pipeline,
    ),
)
# the val loader on the test split
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        val_dataloader['dataset'],
        data_prefix=dict(img_path='test/A', img_path_b='test/B', seg_map_path='test/label'),
    ),
)
# precision / recall / F1 / IoU of the CHANGED class as keys of their own (changed/F1, ...)
val_evaluator = dict(type='ChangeDetectionMetric')
test_evaluator = val_evaluator
