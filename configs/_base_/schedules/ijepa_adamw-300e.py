# I-JEPA's optimisation (reference config): AdamW lr 1e-3, warm-up from 2e-4 over 40
# epochs then cosine to 1e-6; weight decay rising by cosine 0.04 -> 0.4 on the decayed
# parameters only (biases and 1-D tensors stay at 0; the mask token and the weight
# matrices are decayed); EMA momentum rising LINEARLY 0.996 -> 1.0; schedules stepped at
# the start of every iteration, as the reference does; no gradient clipping; bf16 on GPU.
max_epochs = 300
warmup_epochs = 40

optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.04),
    constructor='LayerDecayOptimWrapperConstructor',
    # decay unless 1-D or a bias: the reference's rule ('bias' not in name and ndim != 1)
    paramwise_cfg=dict(no_decay_names=()),
)

param_scheduler = [
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='lr',
        start_value=2e-4,
        final_value=1e-6,
        warmup=warmup_epochs,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
    dict(
        type='IJEPAWarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.4,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

teacher_ema = dict(momentum=0.996, end_momentum=1.0)  # LinearTeacherEMAHook
custom_hooks = [
    dict(type='LinearTeacherEMAHook'),
    dict(type='SkippedImageReportHook'),
    dict(type='RandomStateHook'),
]

# the reference does not scale lr with the batch (64 = 8 GPUs x 8 in its ViT-S runs here)
auto_scale_lr = dict(enable=False, base_batch_size=64)
