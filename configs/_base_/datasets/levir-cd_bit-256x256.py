# LEVIR-CD as BIT (justchenhao/BIT_CD) uses it: the tiles pre-cut into 256 x 256 crops in the
# flat layout A/, B/, label/ + list/{train,val,test,trainval}.txt (what
# tools/dataset_converters/crop_change_pairs.py writes, and what ../shared/data/LEVIR-CD holds).
# Test protocol: every pre-cut crop predicted whole (mode='whole' in the model's test_cfg).
# Loading, test pipeline, dataloader settings and metric: those of levir-cd_512x512.py.
_base_ = ['./levir-cd_512x512.py']

data_root = 'data/LEVIR-CD-256'
crop_size = (256, 256)
flat_prefix = dict(img_path='A', img_path_b='B', seg_map_path='label')

# the crops are trained at their size: flips only
train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        data_prefix=flat_prefix,
        ann_file='list/train.txt',
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=flat_prefix, ann_file='list/val.txt')
)
test_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=flat_prefix, ann_file='list/test.txt')
)
