"""BIT + PerA ViT-L/16 (1024 wide, 24 blocks), LEVIR-CD; otherwise as the ViT-B config."""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

pretrained = 'work_dirs/pera_vit-large-p16_8xb16-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=1024),
)
