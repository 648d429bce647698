"""BIT-R18 baseline (justchenhao/BIT_CD adcd7ae, net_G base_transformer_pos_s4_dd8), LEVIR-CD.

The reference's own training recipe (its scripts/run_cd.sh, main_cd.py, models/trainer.py,
datasets/CD_dataset.py as we read them):

- data: BIT's pre-cut 256 x 256 crops (flat layout + list/*.txt); trained on ``trainval``,
  validated (best checkpoint chosen) on ``test``, as run_cd.sh does (split=trainval,
  split_val=test) -- use list/val.txt instead for a clean model selection;
- augmentation (CDDataAugmentation): random horizontal and vertical flips, a random rescale
  by [1, 1.2] followed by a random 256 crop, a random Gaussian blur (p 0.5, one radius
  uniform in [0, 1] for both dates); no colour jitter;
- input normalisation (u / 255 - 0.5) / 0.5 (``pixel_scale=255, mean=std=0.5``, bit-exact);
- SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 8, 200 epochs, lr multiplied by
  ``1 - epoch / (max_epochs + 1)`` after each epoch (``lr_policy=linear``);
- CE over the 2 classes (``ignore_index`` 255), argmax at test time.

The released LEVIR-CD checkpoint is the ``..._dedim8`` variant: set
``model.decode_head.decoder_head_dims=8``. ImageNet initialisation of the trunk (the
reference's ``pretrained=True``) from a local torchvision file:
``--cfg-options model.backbone.init_cfg.type=Pretrained
model.backbone.init_cfg.checkpoint=/path/resnet18-f37072fd.pth``.
"""

_base_ = [
    '../_base_/datasets/levir-cd_bit-256x256.py',
    '../_base_/default_runtime_seg.py',
]

crop_size = (256, 256)
max_epochs = 200

model = dict(
    type='SiameseEncoderDecoder',
    data_preprocessor=dict(
        type='BitemporalDataPreProcessor',
        pixel_scale=255.0,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        size=crop_size,
        pad_val=0,
        seg_pad_val=255,
    ),
    pretrained=None,
    backbone=dict(type='BITResNet18', out_channels=32, num_stages=4, init_cfg=None),
    decode_head=dict(type='BITHead', in_channels=32, channels=32, decoder_head_dims=64),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)

train_pipeline = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile', changed_value=255),
    dict(type='BitemporalRandomFlip', prob=0.5, directions=('horizontal', 'vertical')),
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.2), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='BitemporalGaussianBlur', prob=0.5, max_radius=1.0, per_date=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(ann_file='list/trainval.txt', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(ann_file='list/test.txt'))

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        begin=0,
        end=max_epochs + 1,
        by_epoch=True,
    )
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=1,
        max_keep_ckpts=1,
        save_best='changed/F1',
        rule='greater',
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
