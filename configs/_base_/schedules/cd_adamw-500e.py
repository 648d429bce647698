# Change-detection fine-tuning of the paper (method.md 1.7): AdamW, 500 epochs, batch 8,
# lr up to 1e-4 then cosine down to 1e-6. Not given by the paper, our choices: a linear warmup
# from 0 over the first 10 epochs, torch's AdamW default weight decay 0.01, no layer-wise
# lr decay. bf16 autocast on GPU, fp32 on CPU (AutoAmpOptimWrapper).
max_epochs = 500
warmup_epochs = 10

optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
)
param_scheduler = [
    dict(
        type='mmpretrain.WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=warmup_epochs,
        start_factor=0.0,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=10,
        max_keep_ckpts=2,
        save_best='changed/F1',
        rule='greater',
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
auto_scale_lr = dict(enable=False, base_batch_size=8)
