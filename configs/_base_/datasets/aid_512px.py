# AID (30 scene classes, 10,000 images of 600x600), the paper's 20 % / 80 % split,
# resized to 512 (method.md section 1.7). Layout after
#   python tools/dataset_converters/split_scene_dataset.py data/aid/AID \
#       --out-dir data/aid/meta --train-ratio 0.2 --seed 0
# is data/aid/AID/<Class>/*.jpg and data/aid/meta/{classes.txt, split-20-80_seed0_{train,test}.txt}
# (docs/scene_classification.md).
_base_ = ['./scene-cls_512px.py']

data_root = 'data/aid'
data_prefix = 'AID'
train_ann_file = 'meta/split-20-80_seed0_train.txt'
test_ann_file = 'meta/split-20-80_seed0_test.txt'
num_classes = 30

data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=data_prefix, ann_file=train_ann_file)
)
val_dataloader = dict(
    dataset=dict(data_root=data_root, data_prefix=data_prefix, ann_file=test_ann_file)
)
test_dataloader = val_dataloader
