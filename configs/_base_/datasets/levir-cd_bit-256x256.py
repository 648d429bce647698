# LEVIR-CD as BIT (justchenhao/BIT_CD) uses it: the tiles pre-cut into 256 x 256 crops in the
# flat layout A/, B/, label/ + list/{train,val,test,trainval}.txt (what
# tools/dataset_converters/crop_change_pairs.py writes, and what ../shared/data/LEVIR-CD holds).
# Test protocol: every pre-cut crop predicted whole (mode='whole' in the model's test_cfg).
dataset_type = 'LEVIRCDChangeDataset'
data_root = 'data/LEVIR-CD-256'
crop_size = (256, 256)
flat_prefix = dict(img_path='A', img_path_b='B', seg_map_path='label')

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
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
        data_prefix=flat_prefix,
        ann_file='list/train.txt',
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
        data_prefix=flat_prefix,
        ann_file='list/val.txt',
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=flat_prefix,
        ann_file='list/test.txt',
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type='ChangeDetectionMetric')
test_evaluator = val_evaluator
