"""The simple fused-feature head instead of BIT: |f_A - f_B| -> 2 conv-BN-ReLU -> 1x1 classifier.

The encoder side is the ViT-B config's (last block, x4 bilinear, conv3x3 -> 32 at 1/4
resolution); ``fusion='concat'`` or ``'diff'`` are the other options. The logits (1/4
resolution) are upsampled bilinearly to the label size by MMSeg.
"""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

model = dict(
    neck=dict(out_channels=64),
    decode_head=dict(
        _delete_=True,
        type='FusedChangeHead',
        fusion='abs_diff',
        in_channels=64,
        in_index=0,
        channels=64,
        num_convs=2,
        num_classes=2,
        dropout_ratio=0.1,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
)
