"""BIT + PerA ViT-B/16 ViT-Adapter encoder, LEVIR-CD; otherwise as the plain ViT-B config.

The adapter's stride-4 map (level 0, 768 channels) is BIT's input after a conv3x3 768 -> 32
(ChangeFeatureProjection with scale factor 1: no upsampling).
"""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

pretrained = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'

model = dict(
    data_preprocessor=dict(size_divisor=32, test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _delete_=True,
        type='PerAViTAdapter',
        arch='base',
        pretrain_size=448,
        patch_size=16,
        drop_path_rate=0.2,
        drop_path_mode='row',
        conv_inplane=64,
        n_points=4,
        deform_num_heads=12,
        init_values=0.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        with_cffn=True,
        cffn_ratio=0.25,
        deform_ratio=1.0,
        add_vit_feature=True,
        use_extra_extractor=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=768, in_index=0, scale_factors=1),
)
