"""CPU smoke run of the linear probe on real Sentinel-2 pixels (the OSCD sample).

Data: 64 px tiles of the OSCD 4-band stacks (B02, B03, B04, B08, uint16 DN ``.npy``) with
the OSCD change maps as 2-class labels (0 = no change, 1 = change; the files' {1, 2}
mapped), written by ``pera_mm.testing.oscd_pairs.write_oscd_seg_tiles`` (bercy = train,
paris = val). A stand-in task: the change map labels either date's image. Encoder: the
LatentMIM ViT of the base config at TINY size (64 wide, 4 blocks, 2 heads). 40 iterations,
batch 8, lr 1e-2 constant. Run::

    python -c "from pera_mm.testing.oscd_pairs import write_oscd_seg_tiles as w; \\
        print(w('../shared/data/OSCD', 'data/oscd_cm_64px'))"
    python tools/analysis_tools/linear_probe_seg.py \\
        configs/linear_probe/linear-probe_latent-mim-vit-tiny-p16_1xb8-40iter_oscd-cm-64px_cpu-smoke.py \\
        CHECKPOINT --data-root data/oscd_cm_64px
"""

_base_ = [
    './_base_/linear-probe_latent-mim-vit-small-p16_4band.py',
    '../_base_/default_runtime_seg.py',
]
data_root = 'data/oscd_cm_64px'
max_iters = 40
embed_dims = 64

model = dict(
    backbone=dict(embed_dims=embed_dims, num_layers=4, num_heads=2),
    decode_head=dict(in_channels=embed_dims),
)

metainfo = dict(classes=('no change', 'change'), palette=[[0, 0, 0], [255, 255, 255]])
train_pipeline = [
    dict(type='mmpretrain.LoadMultiBandImageFromFile', num_bands=4, to_float32=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=2),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='mmpretrain.LoadMultiBandImageFromFile', num_bands=4, to_float32=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=2),
    dict(type='PackSegInputs'),
]


def _dataset(split, pipeline):
    return dict(
        type='BaseSegDataset',
        data_root=data_root,
        data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
        img_suffix='.npy',
        seg_map_suffix='.png',
        metainfo=metainfo,
        pipeline=pipeline,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_dataset('train', train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_dataset('val', test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUF1Metric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-2))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False)
