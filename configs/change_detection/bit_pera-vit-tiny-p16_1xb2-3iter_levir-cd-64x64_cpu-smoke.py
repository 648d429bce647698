"""CPU smoke variant of bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py.

The same model, data and metric types at test size: the TINY ViT of
``pera_mm.testing.TINY_ARCH`` (64 wide, 4 blocks, 2 heads) pretrained at 64 px, the BIT
head, 64 px random resized crops + flips of the flat LEVIR-CD layout (every pair in A/ for
training, list/demo.txt for validation and test), 3 iterations at a constant lr 1e-3.
Testing slides 128 px windows (stride 128) over the whole 256 px images. Make a checkpoint
and run::

    python -c "from pera_mm.testing import make_pera_checkpoint as m; m('work_dirs/pera_tiny_64px.pth')"
    python tools/train.py configs/change_detection/THIS.py --cfg-options \
        train_dataloader.dataset.data_root=DATA val_dataloader.dataset.data_root=DATA \
        test_dataloader.dataset.data_root=DATA
"""

_base_ = ['./bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py']

pretrained = 'work_dirs/pera_tiny_64px.pth'
crop_size = (64, 64)
data_root = 'data/LEVIR-CD'
flat_prefix = dict(_delete_=True, img_path='A', img_path_b='B', seg_map_path='label')

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128
        ),
        img_size=64,
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=64),
    test_cfg=dict(mode='slide', crop_size=(128, 128), stride=(128, 128)),
)

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='BitemporalRandomResizedCrop', size=crop_size, scale=(0.25, 1.0)),
    dict(type='BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, data_prefix=flat_prefix, pipeline=train_pipeline),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, data_prefix=flat_prefix, ann_file='list/demo.txt'),
)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = None
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3, val_interval=3)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=1),
)
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False)
