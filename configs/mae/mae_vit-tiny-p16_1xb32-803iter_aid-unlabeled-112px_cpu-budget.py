"""MMPretrain's MAE, ViT-Tiny/16 encoder, on the unlabeled AID tiles: a CPU-budget study peer.

Model: MMPretrain ``MAE`` with ``MAEViT`` at ``arch='deit-tiny'`` (192 wide, 12
blocks, 3 heads, the same encoder size as the PerA and DINOv2-style peers),
``out_type='raw'`` (tokens, which the evaluation adaptor pools), a
``MAEPretrainDecoder`` of 4 blocks at width 128 (4 heads), normalised-pixel
targets and 75 % of the 7 x 7 patches masked.

Data: ../shared/data/AID_unlabeled/images (150 px, no labels) with the MAE
augmentation (random resized crop of scale 0.2-1, bicubic, to 112 px; horizontal
flip). 112 px is the evaluation size of the fixed protocol, so the fixed sin-cos
position embedding is used at the size it was trained at.

Optimisation: AdamW (betas 0.9 / 0.95, weight decay 0.05, none on norms, biases,
position embedding, mask and cls tokens), lr 1e-3 with a linear warm-up from 0
over the first fifth then a cosine to 1e-6 (MAE's blr 1.5e-4 per 256 gives
1.9e-5 at batch 32, far too slow for a run this short).

Budget (issue 21, the CPU-budget study of docs/representation_quality.md): 803
iterations of 32, the same wall time as PerA's 330 (about 11 minutes) at the
interleaved step times of benchmarks/results/study_step_time.json (0.84 s per MAE
step, 2.04 s per PerA step, one thread, shared 2-core machine). Tuned for: the
best aid/knn_top1_k20 of two quarter-budget screens (lr 1e-3 vs 2e-3), AID only.

Evaluation while it trains: every eval_interval iterations, the fixed protocol
(configs/_base_/evaluation/knn_aid_rsscn7.py; encoder cls token with masking off);
the checkpoint with the best `aid/knn_top1_k20` is kept.

Measured: docs/representation_quality.md, "CPU-budget study".
"""

_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/evaluation/knn_aid_rsscn7.py',
]

img_size = 112
patch_size = 16
max_iters = 803
warmup_iters = max_iters // 5
eval_interval = max_iters // 5
data_root = '../shared/data/AID_unlabeled'

model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch='deit-tiny',
        img_size=img_size,
        patch_size=patch_size,
        mask_ratio=0.75,
        out_type='raw',
    ),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=(img_size // patch_size) ** 2,
        patch_size=patch_size,
        in_chans=3,
        embed_dim=192,
        decoder_embed_dim=128,
        decoder_depth=4,
        decoder_num_heads=4,
        mlp_ratio=4.0,
    ),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=patch_size,
        loss=dict(type='PixelReconstructionLoss', criterion='L2'),
    ),
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=False,
    ),  # LoadRGBImageFromFile already yields RGB
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='UnlabeledImageDataset',
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='RandomResizedCrop',
                scale=img_size,
                crop_ratio_range=(0.2, 1.0),
                interpolation='bicubic',
                backend='pillow',
            ),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs', meta_keys=['img_path']),
        ],
    ),
)

optim_wrapper = dict(
    type='AutoAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.0),
            'mask_token': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
        }
    ),
)
param_scheduler = [
    dict(
        type='WarmupCosineParamScheduler',
        param_name='lr',
        final_value=1e-6,
        warmup=warmup_iters,
        start_factor=0.0,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=eval_interval)
default_hooks = dict(
    logger=dict(interval=20, log_metric_by_epoch=False),
    checkpoint=dict(
        interval=max_iters,
        by_epoch=False,
        max_keep_ckpts=1,
        save_best='aid/knn_top1_k20',
        rule='greater',
    ),
)
log_processor = dict(by_epoch=False)
val_dataloader = dict(num_workers=1)
