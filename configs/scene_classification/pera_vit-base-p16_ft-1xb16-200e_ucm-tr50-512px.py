"""As the UC Merced 80/20 config, on the 50 % train / 50 % test split (paper OA 99.71).

Split: ``split_scene_dataset.py data/ucm/UCMerced_LandUse/Images --out-dir data/ucm/meta
--train-ratio 0.5``.
"""

_base_ = ['./pera_vit-base-p16_ft-1xb16-200e_ucm-tr80-512px.py']

train_dataloader = dict(dataset=dict(ann_file='meta/split-50-50_seed0_train.txt'))
val_dataloader = dict(dataset=dict(ann_file='meta/split-50-50_seed0_test.txt'))
test_dataloader = val_dataloader
