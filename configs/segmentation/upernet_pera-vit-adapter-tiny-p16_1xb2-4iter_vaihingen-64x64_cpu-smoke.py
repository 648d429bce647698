"""CPU smoke variant of upernet_pera-vit-adapter-base-p16_4xb2-200e_vaihingen-512x512.py.

The same model, data and metric types at test size: the TINY ViT of
``pera_mm.testing.TINY_ARCH`` (64 wide, 4 blocks, 2 heads) pretrained at 64 px, narrow
heads, 64 px inputs, 4 iterations at a constant lr 1e-2. Training sees every image resized to
64 x 64 (no random crop or flip), so that a few iterations on the same images can lower the
loss; testing resizes to 128 px and slides 64 px windows (stride 32), and the predictions come
back at the label's size. Make a checkpoint and run::

    python -c "from pera_mm.testing import make_pera_checkpoint as m; m('work_dirs/pera_tiny_64px.pth')"
    python tools/train.py configs/segmentation/upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_vaihingen-64x64_cpu-smoke.py \
        --cfg-options train_dataloader.dataset.data_root=DATA val_dataloader.dataset.data_root=DATA
"""

_base_ = ['./upernet_pera-vit-adapter-base-p16_4xb2-200e_vaihingen-512x512.py']

pretrained = 'work_dirs/pera_tiny_64px.pth'
crop_size = (64, 64)

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128
        ),
        pretrain_size=64,
        deform_num_heads=2,
        interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    decode_head=dict(in_channels=[64, 64, 64, 64], channels=32),
    auxiliary_head=dict(in_channels=64, channels=16),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(32, 32)),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes={{_base_.num_classes}}),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),  # after Resize: labels keep their size
    dict(type='CheckSegLabel', num_classes={{_base_.num_classes}}),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: 2 sizes x 2 flips, small enough for a CPU
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(128, 128), keep_ratio=True),
                dict(type='Resize', scale=(192, 192), keep_ratio=True),
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='CheckSegLabel', num_classes={{_base_.num_classes}})],
            [dict(type='PackSegInputs')],
        ],
    ),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline),
)
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-2))
param_scheduler = None
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=4, max_keep_ckpts=1),
    visualization=dict(interval=1),  # tools/test.py --show-dir paints every image
)
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False)
