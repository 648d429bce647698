# UPerNet + FCN auxiliary head on the PerA ViT-L/16 ViT-Adapter (1024 channels,
# 24 blocks, 16 deformable heads). Activation checkpointing keeps the memory of a
# 512 crop within one 40 GB GPU.
_base_ = ['./upernet_pera-vit-adapter-base-p16.py']

model = dict(
    backbone=dict(
        arch='large',
        deform_num_heads=16,
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        with_cp=True,
    ),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024]),
    auxiliary_head=dict(in_channels=1024),
)
