# UC Merced Land Use (21 scene classes, 2,100 images of 256x256 .tif, a few off-size such
# as 256x253), the paper's 80 % / 20 % split (50 % / 50 %: see the *_ucm-tr50 configs),
# upsampled to 512 (method.md section 1.7). Layout after
#   python tools/dataset_converters/split_scene_dataset.py data/ucm/UCMerced_LandUse/Images \
#       --out-dir data/ucm/meta --train-ratio 0.8 --seed 0
# is data/ucm/UCMerced_LandUse/Images/<class>/*.tif and
# data/ucm/meta/{classes.txt, split-80-20_seed0_{train,test}.txt} (docs/scene_classification.md).
_base_ = ['./scene-cls_512px.py']

data_root = 'data/ucm'
data_prefix = 'UCMerced_LandUse/Images'
train_ann_file = 'meta/split-80-20_seed0_train.txt'
test_ann_file = 'meta/split-80-20_seed0_test.txt'
num_classes = 21

data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=data_prefix, ann_file=train_ann_file)
)
val_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=data_prefix, ann_file=test_ann_file)
)
test_dataloader = val_dataloader
