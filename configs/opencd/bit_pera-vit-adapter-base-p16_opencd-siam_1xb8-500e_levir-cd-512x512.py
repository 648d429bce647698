"""Open-CD's SiamEncoderDecoder + PerA ViT-B/16 ViT-Adapter + our faithful BIT head, LEVIR-CD.

Needs Open-CD (see configs/opencd/README.md). The recipe is the one of
configs/change_detection/bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py (method.md 1.7).
The adapter's stride-4 map (level 0) goes through mmseg.ChangeFeatureProjection (conv3x3
768 -> 32, no upsampling), called by Open-CD as ``neck(feats_a, feats_b)``, which returns the
pair mmseg.BITHead takes.
"""

_base_ = [
    '../_base_/datasets/levir-cd_512x512.py',
    '../_base_/schedules/cd_adamw-500e.py',
]

default_scope = 'opencd'
custom_imports = dict(imports=['opencd', 'pera_mm'], allow_failed_imports=False)

pretrained = 'work_dirs/pera_vit-base-p16_8xb24-200e_rsrsd-448px/epoch_200.pth'
crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    type='SiamEncoderDecoder',
    backbone_inchannels=3,
    data_preprocessor=dict(
        type='mmseg.BitemporalDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        size_divisor=32,
        pad_val=0,
        seg_pad_val=255,
        test_cfg=dict(size_divisor=32),
    ),
    backbone=dict(
        type='mmseg.PerAViTAdapter',
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
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(
        type='mmseg.ChangeFeatureProjection',
        in_channels=768,
        out_channels=32,
        in_index=0,
        scale_factors=1,
    ),
    decode_head=dict(
        type='mmseg.BITHead',
        in_channels=32,
        channels=32,
        num_classes=2,
        decoder_head_dims=8,
        norm_cfg=dict(type='BN', requires_grad=True),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(512, 512)),
)

# our data side, referenced in its scope
train_pipeline = [
    dict(type='mmseg.LoadBitemporalImagesFromFile'),
    dict(type='mmseg.LoadChangeLabelFromFile', changed_value=255),
    dict(type='mmseg.BitemporalRandomResizedCrop', size=crop_size, scale=(0.25, 1.0)),
    dict(type='mmseg.BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='mmseg.PackSegInputs'),
]
test_pipeline = [
    dict(type='mmseg.LoadBitemporalImagesFromFile'),
    dict(type='mmseg.LoadChangeLabelFromFile', changed_value=255),
    dict(type='mmseg.PackSegInputs'),
]
train_dataloader = dict(dataset=dict(type='mmseg.LEVIRCDChangeDataset', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='mmseg.LEVIRCDChangeDataset', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmseg.ChangeDetectionMetric')
test_evaluator = val_evaluator

default_hooks = dict(visualization=dict(type='mmseg.SegVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='mmseg.SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
