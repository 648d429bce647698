"""The ViT-B LEVIR-CD config, tested on PRE-CUT crops instead of whole tiles.

Cut the test tiles first (512 crops without overlap, names listed in list/test.txt)::

    python tools/dataset_converters/crop_change_pairs.py data/LEVIR-CD/test \
        data/LEVIR-CD-512/test --crop-size 512 --stride 512 --list-name test

Each crop is then predicted whole; with stride 512 this scores the same pixels as the
sliding-window protocol of the base config.
"""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

model = dict(test_cfg=dict(_delete_=True, mode='whole'))
test_dataloader = dict(
    dataset=dict(
        data_root='data/LEVIR-CD-512/test',
        data_prefix=dict(_delete_=True, img_path='A', img_path_b='B', seg_map_path='label'),
        ann_file='list/test.txt',
    )
)
