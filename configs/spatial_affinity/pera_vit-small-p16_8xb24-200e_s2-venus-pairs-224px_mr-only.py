"""PerA ViT-S/16 on the MR images of HR/MR pairs: the "MR" model of method.md §2, for PerA.

§2 gives no PerA setting (its hosts are I-JEPA and LatentMIM), so this is PerA's own
recipe (method.md §1: masks s:l:t = 0.2:0.2:0.6, loss weights DINO 1.0 / pixel 0.01 /
KoLeo 0.1, AdamW lr 1e-3 with a 20-epoch warm-up, wd 0.04 -> 0.2, EMA 0.992 -> 1, 200
epochs, batch 192 = 8 x 24) on PerA's ViT-S/16, with crops OURS for the 4-band S2/VENµS
setting: 224 px MR global crops (448 px HR), 96 px locals, 2 global + 8 local pairs.

4 bands (B2/B3/B4/B8): PerA's colour augmentation is RGB-only, so it is off for both
roles; the student and teacher views differ only by their disjoint masks. The pixel head
predicts 16 x 16 x 4 values per l patch (its channels come from the backbone). The same
``PairedHRMRDataset`` and ``PairedPerAMultiCropViews`` as the SA model, so both see the
same MR views; this one cuts no HR crops. MR and HR share the 4-band recipe's OSCD
statistics (replace them with your data set's).
"""

_base_ = [
    '../_base_/models/pera_vit-base-p16.py',
    '../_base_/schedules/pera_adamw-200e.py',
    '../_base_/default_runtime.py',
]
num_bands = 4
img_size = 224
patch_size = 16
scale = 2
data_root = 'data/s2_venus_pairs'
colour_off = dict(jitter_prob=0.0, gray_prob=0.0)

model = dict(
    backbone=dict(arch='small', img_size=img_size, patch_size=patch_size, in_channels=num_bands),
    data_preprocessor=dict(
        type='MultiBandDataPreProcessor',
        num_bands=num_bands,
        pixel_scale=10000,
        mean=[0.1373, 0.1089, 0.0962, 0.1204],
        std=[0.0184, 0.0225, 0.0301, 0.0512],
    ),
)

views = dict(
    type='PairedPerAMultiCropViews',
    num_bands=num_bands,
    with_hr=False,
    global_crop_size=img_size,
    local_crop_size=96,
    num_global_crops=2,
    num_local_crops=8,
    global_crop_scale=(0.4, 1.0),
    local_crop_scale=(0.05, 0.4),
    student_color=colour_off,
    teacher_color=colour_off,
)
masks = dict(type='DisjointMaskGenerator', patch_size=patch_size, mask_ratios=(0.2, 0.2, 0.6))
meta_keys = ['img_path', 'hr_img_path', 'scale', 'global_crop_boxes']
train_pipeline = [
    dict(type='LoadHRMRPairFromFile', num_bands=num_bands, to_float32=True),
    views,
    masks,
    dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks'], meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=24,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='PairedHRMRDataset',
        data_root=data_root,
        ann_file='pairs.txt',
        scale=scale,
        pipeline=train_pipeline,
    ),
)
