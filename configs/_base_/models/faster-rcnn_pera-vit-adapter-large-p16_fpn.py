# Faster R-CNN + FPN on the PerA ViT-L/16 ViT-Adapter (1024 channels, 24 blocks, 16
# deformable heads), otherwise as the ViT-B/16 base. Activation checkpointing of the
# blocks and interactions.
_base_ = ['./faster-rcnn_pera-vit-adapter-base-p16_fpn.py']

model = dict(
    backbone=dict(
        arch='large',
        deform_num_heads=16,
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        with_cp=True,
    ),
    neck=dict(in_channels=[1024, 1024, 1024, 1024]),
)
