"""BIT + PerA ViT-B/16 on DSIFN-CD (256 x 256 crops, flat layout; each test crop whole).

The LEVIR-CD recipe of method.md 1.7 (the paper reports no DSIFN-CD number): random resized
crop at 256 + flips, AdamW lr 1e-4 -> 1e-6 cosine, batch 8, drop path 0.2, 500 epochs.
"""

_base_ = [
    '../_base_/models/bit_pera-vit-base-p16.py',
    '../_base_/datasets/dsifn-cd_256x256.py',
    '../_base_/default_runtime_seg.py',
    '../_base_/schedules/cd_adamw-500e.py',
]

pretrained = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    test_cfg=dict(_delete_=True, mode='whole'),
)
