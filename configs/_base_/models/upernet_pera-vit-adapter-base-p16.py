# UPerNet (channels 512) + FCN auxiliary head (channels 256) on the PerA ViT-B/16
# ViT-Adapter backbone (4 maps of 768 channels at strides 4/8/16/32), CE losses.
# Norms: SyncBN (GPU configs); tools/train.py turns it into BN for CPU/gloo runs.
norm_cfg = dict(type='SyncBN', requires_grad=True)

# Normalisation of the PerA pretraining (configs/_base_/datasets/pera_rsrsd-448px.py,
# method.md 1.1): ImageNet mean/std in RGB, 0-255. MMSeg loads images as BGR, so the
# preprocessor converts to RGB first. A checkpoint pretrained with the remote-sensing
# statistics needs mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55] here.
# Every batch is padded to a multiple of 32 (the adapter's coarsest stride), in
# training and at test time (labels padded with 255 = ignored).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255,
    test_cfg=dict(size_divisor=32),
)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='PerAViTAdapter',
        arch='base',
        pretrain_size=448,  # position grid of the pretraining (28 x 28), resized every forward
        patch_size=16,
        drop_path_rate=0.1,  # method.md 1.7; one rate for every block and extractor
        drop_path_mode='row',  # per-sample stochastic depth
        conv_inplane=64,
        n_points=4,
        deform_num_heads=12,
        init_values=0.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        with_cffn=True,
        cffn_ratio=0.25,
        # 1.0 as the authors' released PerA downstream code; the ViT-Adapter
        # reference ViT-B/L configs use 0.5 (see the *_deform-ratio-0.5 config).
        deform_ratio=1.0,
        add_vit_feature=True,
        use_extra_extractor=True,
        norm_cfg=norm_cfg,
        with_cp=False,
        # the experiment config adds init_cfg=dict(type='Pretrained', checkpoint=...):
        # the teacher ViT of a PerA checkpoint
    ),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=2,  # the stride-16 map
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4),
    ),
    train_cfg=dict(),
    # slide inference over whole tiles: 512 windows, overlap 256 (stride 256)
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(256, 256)),
)
