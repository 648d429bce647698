# DINOv2-style baseline with ViT-B/16 in PerA's framework: iBOT mask tokens at
# the input (mask_token_layer=0), a patch loss with its own centre, KoLeo on the
# backbone cls tokens, no pixel prediction. Widths are derived as in PerA.
model = dict(
    type='DINOv2Baseline',
    backbone=dict(
        type='PerAViT',
        arch='base',
        img_size=448,
        drop_path_rate=0.3,
        drop_path_mode='subset',
        interpolate_offset=0.1,
        mask_token_layer=0,
    ),
    projector=dict(
        type='PerADINOHead', out_channels=65536, hidden_channels=2048, bottleneck_channels=384
    ),
    cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9, loss_weight=1.0),
    patch_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9, loss_weight=1.0),
    koleo_loss=dict(type='KoLeoLoss', loss_weight=0.1),
    koleo_crop_reduction='sum',
)
