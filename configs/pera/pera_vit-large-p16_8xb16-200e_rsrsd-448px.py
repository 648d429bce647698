"""PerA ViT-L/16 at 448 px: EMA 0.998 -> 1, teacher temperature 0.02 -> 0.03."""
_base_ = ['./pera_vit-base-p16_8xb24-200e_rsrsd-448px.py']

model = dict(
    backbone=dict(arch='large', drop_path_rate=0.3),
    projector=dict(in_channels=1024),
    predictor=dict(in_channels=1024))
train_dataloader = dict(batch_size=16)
custom_hooks = [
    dict(type='TeacherEMAHook', momentum=0.998, end_momentum=1.0),
    dict(type='TeacherTemperatureHook', start_temp=0.02, end_temp=0.03, warmup_epochs=30),
    dict(type='CenterUpdateHook'),
    dict(type='CollapseMonitorHook', max_cls_cosine=0.6, min_cls_erank=2.0, window=20),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]
