# DSIFN-CD (six Chinese cities, Google Earth, 2 m) in its usual preprocessed form (BIT /
# ChangeFormer): 256 x 256 crops in the flat layout A/, B/, label/ (0/255) + list/*.txt,
# what ../shared/data/DSIFN-CD holds. Test protocol: each crop predicted whole.
# The original release ({train,val,test}/{t1,t2,mask}, JPEG) works with DSIFNCDChangeDataset's
# data_prefix / img_suffix='.jpg' / seg_map_suffix (see its docstring).
# Flat layout, lists, loading, test pipeline, dataloaders and metric: those of
# levir-cd_bit-256x256.py.
_base_ = ['./levir-cd_bit-256x256.py']

dataset_type = 'DSIFNCDChangeDataset'
data_root = 'data/DSIFN-CD'
crop_size = (256, 256)

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='BitemporalRandomResizedCrop', size=crop_size, scale=(0.5, 1.0)),
    dict(type='BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline)
)
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
