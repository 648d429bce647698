# LatentMIM with a ViT-S/16 encoder (the paper's host, method.md section 2): cls token,
# 3-layer MLP head (4096 hidden), cross-attention decoder of depth 3, 20 of 196 patches
# visible at 280 px (14 x 14 cells of 16 + 4 px), patch InfoNCE (tau 0.2, x 2 tau).
# Similarity regulariser: coefficient 0.1 as in the authors' README run (their yaml
# default is 0, i.e. `sim_loss=None`); its target follows LatentMIMScheduleHook.
patch_size = 16
patch_gap = 4
in_channels = 3

model = dict(
    type='LatentMIM',
    backbone=dict(
        type='LatentMIMViT',
        embed_dims=384,
        num_layers=12,
        num_heads=6,
        mlp_ratio=4.0,
        in_channels=in_channels,
        patch_size=patch_size,
        drop_path_rate=0.0,
        projector=dict(mlp_dim=4096, mlp_depth=3),
    ),
    neck=dict(type='LatentMIMDecoder', embed_dims=256, num_layers=3, num_heads=8),
    loss=dict(type='PatchInfoNCELoss', tau=0.2),
    sim_loss=dict(type='SimilarityTargetLoss', loss_weight=0.1),
    patch_gap=patch_gap,
    num_visible=20,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=False,  # LoadRGBImageFromFile already yields RGB
    ),
)
