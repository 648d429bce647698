"""Open-CD's FeatureFusionNeck (|f_A - f_B| per level) + MMSeg's FCNHead on the stride-4 map.

The simple fused-feature option in Open-CD's scope; our FusedChangeHead
(configs/change_detection/fcn-absdiff_*) is the MMSeg-only counterpart.
"""

_base_ = ['./bit_pera-vit-adapter-base-p16_opencd-siam_1xb8-500e_levir-cd-512x512.py']

model = dict(
    neck=dict(
        _delete_=True,
        type='FeatureFusionNeck',
        policy='abs_diff',
        in_channels=[768, 768, 768, 768],
        out_indices=(0, 1, 2, 3),
    ),
    decode_head=dict(
        _delete_=True,
        type='mmseg.FCNHead',
        in_channels=768,
        in_index=0,
        channels=256,
        num_convs=2,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
)
