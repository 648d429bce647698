# Linear-probe semantic segmentation (method.md section 2, the cross-scale evaluation):
# a FROZEN encoder and one linear map per patch feature, D -> classes * p^2, pixel-shuffled
# to full resolution (PatchLinearSegHead); AdamW, cross-entropy with ignore index 255 averaged
# over the labelled pixels, mIoU.
#
# Encoder: the LatentMIM ViT-S/16 (the paper's host) on 4 bands (B02, B03, B04, B08), run
# WITHOUT the gap (LatentMIMViT.forward cuts contiguous 16 px patches) and without its
# projection head. Any of our ViTs works with out_type='featmap':
# the I-JEPA ViT-S/14 and the PerA ViT-S/16 probes are the sibling files
# linear-probe_ijepa-vit-small-p14_4band.py and linear-probe_pera-vit-small-p16_4band.py.
# tools/analysis_tools/linear_probe_seg.py sets init_cfg=dict(type='Pretrained',
# checkpoint=CKPT) on the backbone (LatentMIMViT loads the EMA 'target' encoder).
#
# Input size: images are PADDED, never resized, to a multiple of the patch, bottom and
# right, with 0 after normalisation (the band mean) and label 255 (ignored); predictions
# are cropped back. GEO-Bench (256 px) and MADOS (240 px) need no padding at p = 16; at
# p = 14 they become 266 and 252 px.
#
# Normalisation: Sentinel-2 L1C DN, per band, the statistics of the 4-band pretraining
# configs (configs/ijepa/*4band*) x 10000; a data set config replaces them with its own.
# Probe hyper-parameters (the paper gives none): AdamW lr 1e-3, weight decay 1e-4, betas
# (0.9, 0.999) -- our defaults.
patch_size = 16
num_bands = 4

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[1373.0, 1089.0, 962.0, 1204.0],
    std=[184.0, 225.0, 301.0, 512.0],
    bgr_to_rgb=False,
    size_divisor=patch_size,
    pad_val=0,
    seg_pad_val=255,
    test_cfg=dict(size_divisor=patch_size),
)

model = dict(
    type='LinearProbeEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.LatentMIMViT',
        embed_dims=384,
        num_layers=12,
        num_heads=6,
        in_channels=num_bands,
        patch_size=patch_size,
        projector=None,
        out_type='featmap',
    ),
    decode_head=dict(
        type='PatchLinearSegHead',
        in_channels=384,
        num_classes=2,  # a data set config sets its own
        patch_size=patch_size,
        ignore_index=255,
        # the mean over labelled pixels only (MMSeg's default divides by all pixels,
        # ignored and padded ones included)
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
        ),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
)
