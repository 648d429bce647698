# I-JEPA ViT-S/14 (method.md section 2): no cls token, fixed 2-D sin-cos positions,
# predictor depth 12 at width 384 (its heads default to the encoder's 6), the reference's
# multi-block masks: 4 target blocks of scale 0.15-0.2 and aspect ratio 0.75-1.5, one
# square context block of scale 0.85-1.0 with the targets cut out, min_keep 10.
img_size = 224
patch_size = 14
num_bands = 3

model = dict(
    type='IJEPA',
    backbone=dict(
        type='IJEPAViT',
        arch='small',
        img_size=img_size,
        patch_size=patch_size,
        in_channels=num_bands,
        drop_path_rate=0.0,
        pos_embed_mode='recompute',
    ),
    neck=dict(type='IJEPAPredictor', embed_dims=384, num_layers=12),
    mask_sampler=dict(
        num_targets=4,
        target_scale=(0.15, 0.2),
        target_aspect_ratio=(0.75, 1.5),
        context_scale=(0.85, 1.0),
        min_keep=10,
        allow_overlap=False,
    ),
    # ImageNet statistics in 0-255 units (the reference normalises RGB this way)
    data_preprocessor=dict(
        type='MultiBandDataPreProcessor',
        num_bands=num_bands,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
)
