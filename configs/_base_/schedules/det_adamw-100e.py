# Detection fine-tuning of the paper (method.md 1.7): AdamW, 100 epochs, total batch 16,
# lr 1e-4 with a cosine decay, weight decay 1e-3. Not given in the paper, our choices:
# a 1-epoch linear warm-up from 0 (WarmupCosineParamScheduler, closed form, per
# iteration), the cosine ending at 0, and layer-wise lr decay 0.9 per ViT block through
# our constructor (it asks backbone.get_layer_depth; the adapter-only parameters, FPN,
# RPN and RoI heads get the full lr). fp32 by default; `tools/train.py --amp` switches
# to AutoAmpOptimWrapper (AMP on GPU, fp32 on CPU).
max_epochs = 100
warmup_epochs = 1

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-3),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, no_decay_names=('pos_embed', 'level_embed')),
)

# `end` defaults to max_epochs; the scheduler lives in the mmpretrain registry
param_scheduler = [
    dict(
        type='mmpretrain.WarmupCosineParamScheduler',
        param_name='lr',
        final_value=0.0,
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
        max_keep_ckpts=3,
        save_best='voc_area/mAP',
        rule='greater',
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
)

# the paper's total batch; --auto-scale-lr scales lr to another batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
