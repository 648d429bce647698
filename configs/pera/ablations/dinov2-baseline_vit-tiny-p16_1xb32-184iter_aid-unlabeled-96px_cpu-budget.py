"""DINOv2-style baseline ViT-Tiny/16 on the unlabeled AID tiles: a CPU-budget study peer.

The peer of the PerA CPU-budget recipe
(configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py) under
the same wall-time budget: the same ViT-Tiny/16 student and teacher, the same
4096-prototype head, the same data and the same 96/48 px crops (2 global + 4
local), the same optimiser, the same shape of warm-up (first fifth), teacher
temperature and EMA schedules. What differs is the method (``DINOv2Baseline``):
crops drawn independently per view, iBOT block masks on the student's global
crops, the iBOT patch loss, no pixel prediction.

Budget (issue 21, the CPU-budget study of docs/representation_quality.md): 184
iterations of 32, the same wall time as PerA's 330 (about 11 minutes) at the
interleaved step times of benchmarks/results/study_step_time.json (3.66 s per
baseline step, 2.04 s per PerA step, one thread, shared 2-core machine). Tuned
for: the best aid/knn_top1_k20 of two quarter-budget screens (lr 5e-4 vs 1e-3),
AID only.

Evaluation while it trains: every eval_interval iterations, the fixed protocol
(configs/_base_/evaluation/knn_aid_rsscn7.py, teacher cls features); the checkpoint
with the best `aid/knn_top1_k20` is kept.

Measured: docs/representation_quality.md, "CPU-budget study".
"""

_base_ = [
    '../../_base_/models/dinov2-baseline_vit-base-p16.py',
    '../../_base_/datasets/pera_rsrsd-448px.py',
    '../../_base_/schedules/pera_adamw-200e.py',
    '../../_base_/default_runtime.py',
    '../../_base_/evaluation/knn_aid_rsscn7.py',
]

max_iters = 184
warmup_iters = max_iters // 5
eval_interval = max_iters // 5
data_root = '../shared/data/AID_unlabeled'

model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(arch='tiny', img_size=96, drop_path_rate=0.1, patch_size={{_base_.patch_size}}),
    projector=dict(out_channels=4096, hidden_channels=512, bottleneck_channels=128),
)
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadRGBImageFromFile'),
            dict(
                type='PerAMultiCropViews',
                global_crop_size=96,
                local_crop_size=48,
                num_global_crops=2,
                num_local_crops=4,
                global_crop_scale=(0.4, 1.0),
                local_crop_scale=(0.1, 0.4),
                spatial_alignment=False,
                teacher_color=dict(jitter_prob=0.72, gray_prob=0.08),
            ),
            dict(type='DisjointMaskGenerator', patch_size={{_base_.patch_size}}, mode='block'),
            dict(
                type='PackInputs',
                algorithm_keys=['global_masks', 'local_masks'],
                meta_keys=['img_path'],
            ),
        ],
    ),
)

optim_wrapper = dict(optimizer=dict(lr=5e-4))
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
    dict(
        type='WarmupCosineParamScheduler',
        param_name='weight_decay',
        final_value=0.2,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=eval_interval
)
teacher_temp = dict(_delete_=True, start_temp=0.04, end_temp=0.05, warmup_iters=warmup_iters)
collapse_monitor = dict(window=10)
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
