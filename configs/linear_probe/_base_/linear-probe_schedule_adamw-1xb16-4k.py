# Schedule and runtime of the benchmark linear probes (GEO-Bench, MADOS): 4000 iterations
# at batch 16 on one device (m-cashew-plant: 1350 training samples, so about 47 epochs),
# the probe's AdamW (lr 1e-3, from the probe base) with a cosine decay to 1e-6 over the
# run, one validation and one checkpoint at the end. The paper gives no probe schedule:
# these are our defaults. MMSeg scope.
_base_ = ['../../_base_/default_runtime_seg.py']
max_iters = 4000

param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
log_processor = dict(by_epoch=False)
