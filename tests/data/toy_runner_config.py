# A self-contained MMEngine config (toy regression) for tools/ and runner
# tests; its modules are in pera_mm/testing/toy_runner.py. default_scope is
# deliberately unset: tools/train.py and tools/test.py default it to 'mmpretrain'.
custom_imports = dict(imports=['pera_mm.testing.toy_runner'], allow_failed_imports=False)

model = dict(type='ToyRunnerModel')

train_dataloader = dict(
    dataset=dict(type='ToyRunnerDataset', size=8),
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_size=2,
    num_workers=0,
)
val_dataloader = dict(
    dataset=dict(type='ToyRunnerDataset', size=8),
    sampler=dict(type='DefaultSampler', shuffle=False),
    batch_size=2,
    num_workers=0,
)
test_dataloader = val_dataloader
val_evaluator = dict(type='ToyRunnerMetric')
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=100),
]
auto_scale_lr = dict(base_batch_size=4)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False, save_best='acc'),
    logger=dict(type='LoggerHook', interval=1),
)
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
