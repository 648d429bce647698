# PerA with ViT-Tiny/16 for CPU runs: 96 px pretraining grid, narrow heads and
# 4096 prototypes (65536 is far too many for a batch of 32). Loss weights as in
# the ViT-B base (the released code's).
model = dict(
    type='PerA',
    backbone=dict(
        type='PerAViT',
        arch='tiny',
        img_size=96,
        drop_path_rate=0.1,
        drop_path_mode='subset',
        interpolate_offset=0.1,
    ),
    projector=dict(
        type='PerADINOHead', out_channels=4096, hidden_channels=512, bottleneck_channels=128
    ),
    predictor=dict(type='PixelPredictionHead', hidden_channels=512, bottleneck_channels=128),
    cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9, loss_weight=1.0),
    pixel_loss=dict(type='PixelMSELoss', loss_weight=0.01, reduction='patch_sum'),
    koleo_loss=dict(type='KoLeoLoss', loss_weight=0.1),
    koleo_crop_reduction='sum',
    pixel_target='student',
)
