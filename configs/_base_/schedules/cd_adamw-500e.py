# Change-detection fine-tuning of the paper (method.md 1.7): AdamW, 500 epochs, batch 8,
# lr up to 1e-4 then cosine down to 1e-6. Not given by the paper, our choices: a linear warmup
# from 0 over the first 10 epochs, torch's AdamW default weight decay 0.01, no layer-wise
# lr decay. bf16 autocast on GPU, fp32 on CPU (AutoAmpOptimWrapper).
# Loops, the standard hooks and the batch of --auto-scale-lr (8): those of seg_adamw-200e.py.
_base_ = ['./seg_adamw-200e.py']

max_epochs = 500
warmup_epochs = 10

optim_wrapper = dict(
    _delete_=True,
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
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

# keep the best changed-class F1
default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='changed/F1', rule='greater')
)
