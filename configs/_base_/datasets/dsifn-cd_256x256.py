# DSIFN-CD (six Chinese cities, Google Earth, 2 m) in its usual preprocessed form (BIT /
# ChangeFormer): 256 x 256 crops in the flat layout A/, B/, label/ (0/255) + list/*.txt,
# what ../shared/data/DSIFN-CD holds. Test protocol: each crop predicted whole.
# The original release ({train,val,test}/{t1,t2,mask}, JPEG) works with DSIFNCDChangeDataset's
# data_prefix / img_suffix='.jpg' / seg_map_suffix (see its docstring).
dataset_type = 'DSIFNCDChangeDataset'
data_root = 'data/DSIFN-CD'
crop_size = (256, 256)
flat_prefix = dict(img_path='A', img_path_b='B', seg_map_path='label')

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='BitemporalRandomResizedCrop', size=crop_size, scale=(0.5, 1.0)),
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
