"""BIT + PerA slim "ViT-G/16-1024" (1024 wide, 40 blocks), LEVIR-CD; otherwise as ViT-B.

Activation checkpointing keeps the 40 blocks at batch 8 x 512 px within one GPU.
"""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

pretrained = 'work_dirs/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(
        arch='giant-1024', with_cp=True, init_cfg=dict(type='Pretrained', checkpoint=pretrained)
    ),
    neck=dict(in_channels=1024),
)
