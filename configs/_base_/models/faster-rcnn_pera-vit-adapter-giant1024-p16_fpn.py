# Faster R-CNN + FPN on the PerA slim ViT-G/16-1024 ViT-Adapter (1024 channels, 40
# blocks, 16 deformable heads, ~505 M ViT parameters), otherwise as the ViT-B/16 base.
# Activation checkpointing of the blocks and interactions; DDP.
_base_ = ['./faster-rcnn_pera-vit-adapter-base-p16_fpn.py']

model = dict(
    backbone=dict(
        arch='giant-1024',
        deform_num_heads=16,
        interaction_indexes=[[0, 9], [10, 19], [20, 29], [30, 39]],
        with_cp=True,
    ),
    neck=dict(in_channels=[1024, 1024, 1024, 1024]),
)
