"""CPU smoke variant of faster-rcnn_pera-vit-adapter-base-p16_fpn_8xb2-100e_dior-512x512.py.

The same model, dataset, anchors, test settings and metric types at test size: the TINY ViT of
``pera_mm.testing.TINY_ARCH`` (64 wide, 4 blocks, 2 heads) pretrained at 64 px, narrow FPN and
heads (SyncBN stays: MMEngine reverts it to BN in a single process), images resized to 128 px,
4 iterations at a constant lr 1e-3, no flips or colour jitter (a few iterations on the same
images can lower the loss). Trains on the 'train' split,
validates on 'val' and tests on 'test' with both AP modes. Make a checkpoint and run::

    python -c "from pera_mm.testing import make_pera_checkpoint as m; m('work_dirs/pera_tiny_64px.pth')"
    python tools/train.py configs/detection/THIS.py --cfg-options train_dataloader.dataset.data_root=DATA \
        val_dataloader.dataset.data_root=DATA test_dataloader.dataset.data_root=DATA
"""

_base_ = ['./faster-rcnn_pera-vit-adapter-base-p16_fpn_8xb2-100e_dior-512x512.py']

pretrained = 'work_dirs/pera_tiny_64px.pth'
img_scale = (128, 128)

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True, embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128
        ),
        pretrain_size=64,
        conv_inplane=16,
        deform_num_heads=2,
        interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=[64, 64, 64, 64], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64),
    ),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
    ),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=False),
    batch_sampler=None,
    dataset=dict(split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(split='val', pipeline=test_pipeline),
)
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(split='test', pipeline=test_pipeline),
)
val_evaluator = [{{_base_.voc_area_metric}}, {{_base_.coco_style_metric}}]
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = None
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=4)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=4, max_keep_ckpts=1, save_best=None),
)
log_processor = dict(by_epoch=False)
