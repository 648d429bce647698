# PerA with ViT-B/16 and the released code's loss weights (DINO 1.0, KoLeo 0.1,
# pixel 0.01, MSE summed per patch, KoLeo summed over global crops). Head input
# widths, the predictor's patch size and the loss widths are derived by PerA.
model = dict(
    type='PerA',
    backbone=dict(
        type='PerAViT',
        arch='base',
        img_size=448,
        drop_path_rate=0.3,
        drop_path_mode='subset',
        interpolate_offset=0.1,
    ),
    projector=dict(
        type='PerADINOHead', out_channels=65536, hidden_channels=2048, bottleneck_channels=384
    ),
    predictor=dict(type='PixelPredictionHead', hidden_channels=2048, bottleneck_channels=384),
    cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9, loss_weight=1.0),
    pixel_loss=dict(type='PixelMSELoss', loss_weight=0.01, reduction='patch_sum'),
    koleo_loss=dict(type='KoLeoLoss', loss_weight=0.1),
    koleo_crop_reduction='sum',
    pixel_target='student',
)
