# BIT change detection on the PerA ViT-B/16 (method.md 1.7): one shared-weight encoder run on
# each date (SiameseEncoderDecoder), then the BIT head faithful to the reference
# (justchenhao/BIT_CD adcd7ae; token_len 4, encoder depth 1, decoder depth 8, 32 wide).
#
# The ViT side of BIT's input, at BIT's conv_pred position (ChangeFeatureProjection, per date):
# the LAST block's patch map (stride 16, after the final norm), upsampled x4 BILINEARLY
# (align_corners=False) to stride 4, then conv3x3 768 -> 32 with bias, giving the
# (B, 32, H/4, W/4) map the BIT head takes. (BIT-R18 instead upsamples its stride-8 map x2
# nearest before conv_pred.)
#
# Normalisation: the PerA pretraining's (ImageNet mean/std, RGB, 0-255). Our loader reads
# RGB, so no channel swap. A checkpoint pretrained with the remote-sensing statistics needs
# mean=[91.42, 95.40, 80.45], std=[37.82, 32.72, 30.55].
norm_cfg = dict(type='BN', requires_grad=True)  # BIT's classifier BN; per-GPU batch 8
data_preprocessor = dict(
    type='BitemporalDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    size_divisor=16,  # the patch size
    pad_val=0,
    seg_pad_val=255,
    test_cfg=dict(size_divisor=16),
)
model = dict(
    type='SiameseEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='mmpretrain.PerAViT',
        arch='base',
        img_size=448,  # the pretraining grid (28 x 28); resized to the input every forward
        patch_size=16,
        drop_path_rate=0.2,  # method.md 1.7
        drop_path_mode='row',  # per-sample stochastic depth
        out_type='featmap',
        out_indices=(-1,),
        final_norm=True,
        # the experiment config adds init_cfg=dict(type='Pretrained', checkpoint=...):
        # the teacher ViT of a PerA checkpoint
    ),
    neck=dict(
        type='ChangeFeatureProjection',
        in_channels=768,
        out_channels=32,
        in_index=0,
        scale_factors=4,
        mode='bilinear',
        kernel_size=3,
    ),
    decode_head=dict(
        type='BITHead',
        in_channels=32,
        channels=32,
        num_classes=2,
        token_len=4,
        enc_depth=1,
        dec_depth=8,
        num_heads=8,
        head_dims=64,
        decoder_head_dims=8,  # BIT's released LEVIR-CD setting (..._dd8_dedim8); 64 = ..._dd8
        norm_cfg=norm_cfg,
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(512, 512)),
)
