# Copyright (c) pera-mm contributors. All rights reserved.
"""MMEngine Runner configs for the pretrained-vs-random transfer study.

Two downstream tasks, two protocols, one recipe per (task, protocol) shared by
both arms; the arms differ only in the backbone's ``init_cfg`` (a PerA
checkpoint's teacher, or none = PerAViT's random initialisation):

- scene classification: MMPretrain ``ImageClassifier`` = ``PerAViT`` (cls token)
  + ``LinearClsHead``, on a stratified split given as an annotation file;
- semantic segmentation: MMSeg ``EncoderDecoder`` = ``mmpretrain.PerAViT``
  (stride-16 feature map) + a linear ``FCNHead`` (``num_convs=0``: one 1x1
  conv), LoveDA classes, slide inference.

``linear`` freezes the whole backbone (``frozen_stages = num_layers``, also the
final norm); ``finetune`` trains everything. No config file is written by hand:
``build_cls_cfg`` / ``build_seg_cfg`` return plain dicts for ``Config``.
"""

from typing import Optional, Sequence

#: ImageNet statistics (RGB, 0-255), as in the PerA pretraining configs
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

#: one optimisation recipe per protocol, the same for both arms and both tasks
PROTOCOLS = {
    'linear': dict(lr=5e-3, weight_decay=1e-4, drop_path_rate=0.0),
    'finetune': dict(lr=5e-4, weight_decay=0.05, drop_path_rate=0.1),
}


def _backbone(arch, img_size, out_type, protocol, num_layers, checkpoint, scope=''):
    recipe = PROTOCOLS[protocol]
    backbone = dict(
        type=f'{scope}PerAViT',
        arch=arch,
        img_size=img_size,
        patch_size=16,
        drop_path_rate=recipe['drop_path_rate'],
        out_type=out_type,
        frozen_stages=num_layers if protocol == 'linear' else -1,
    )
    if checkpoint is not None:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=str(checkpoint))
    return backbone


def _schedule(protocol: str, iters: int):
    recipe = PROTOCOLS[protocol]
    warmup = max(1, iters // 10)
    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=recipe['lr'], weight_decay=recipe['weight_decay']),
        clip_grad=dict(max_norm=3.0),
    )
    param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup),
        dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=warmup, end=iters),
    ]
    if iters <= warmup:
        param_scheduler = param_scheduler[:1]
    return optim_wrapper, param_scheduler


def _runtime(scope: str, seed: int, work_dir: str, name: str, iters: int):
    return dict(
        default_scope=scope,
        custom_imports=dict(imports=['pera_mm'], allow_failed_imports=False),
        work_dir=work_dir,
        experiment_name=name,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=iters),
        test_cfg=dict(type='TestLoop'),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=max(1, iters // 5)),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=None,
            sampler_seed=dict(type='DistSamplerSeedHook'),
        ),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=seed),
        log_level='WARNING',
        log_processor=dict(by_epoch=False),
    )


def build_cls_cfg(
    *,
    protocol: str,
    seed: int,
    checkpoint: Optional[str],
    arch,
    num_layers: int,
    embed_dims: int,
    img_size: int,
    data_prefix: str,
    train_ann: str,
    test_ann: str,
    classes: Sequence[str],
    iters: int,
    batch_size: int,
    work_dir: str,
    name: str,
) -> dict:
    """Config of one scene-classification run (MMPretrain ``ImageClassifier``)."""
    optim_wrapper, param_scheduler = _schedule(protocol, iters)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0)),
        dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
        dict(type='PackInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(img_size, img_size)),
        dict(type='PackInputs'),
    ]

    def dataset(ann, pipeline):
        return dict(
            type='CustomDataset',
            data_prefix=data_prefix,
            ann_file=ann,
            metainfo=dict(classes=tuple(classes)),
            pipeline=pipeline,
        )

    cfg = dict(
        model=dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=MEAN,
                std=STD,
                to_rgb=True,
                num_classes=len(classes),
            ),
            backbone=_backbone(arch, img_size, 'cls_token', protocol, num_layers, checkpoint),
            head=dict(
                type='LinearClsHead',
                num_classes=len(classes),
                in_channels=embed_dims,
                loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            ),
        ),
        train_dataloader=dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dataset(train_ann, train_pipeline),
        ),
        test_dataloader=dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset(test_ann, test_pipeline),
        ),
        test_evaluator=dict(type='Accuracy', topk=(1,)),
        optim_wrapper=optim_wrapper,
        param_scheduler=param_scheduler,
    )
    cfg.update(_runtime('mmpretrain', seed, work_dir, name, iters))
    return cfg


def build_seg_cfg(
    *,
    protocol: str,
    seed: int,
    checkpoint: Optional[str],
    arch,
    num_layers: int,
    embed_dims: int,
    img_size: int,
    train_root: str,
    test_root: str,
    test_indices: Sequence[int],
    scale: int,
    iters: int,
    batch_size: int,
    work_dir: str,
    name: str,
) -> dict:
    """Config of one segmentation run (MMSeg ``EncoderDecoder``, linear head).

    Training reads ``train_root`` (tiles already resized to ``scale``, raw LoveDA
    label codes); testing reads the original tiles ``test_indices`` of
    ``test_root``, resizes the image to ``scale`` and scores the prediction,
    resized back, against the original full-resolution mask.
    """
    optim_wrapper, param_scheduler = _schedule(protocol, iters)
    crop = (img_size, img_size)
    stride = max(16, (img_size * 2 // 3) // 16 * 16)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(scale, scale), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]
    prefix = dict(img_path='images_png', seg_map_path='masks_png')
    cfg = dict(
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=MEAN,
                std=STD,
                bgr_to_rgb=True,
                pad_val=0,
                seg_pad_val=255,
                size=crop,
            ),
            backbone=_backbone(
                arch, img_size, 'featmap', protocol, num_layers, checkpoint, scope='mmpretrain.'
            ),
            decode_head=dict(
                type='FCNHead',
                in_channels=embed_dims,
                channels=embed_dims,
                num_convs=0,
                concat_input=False,
                dropout_ratio=0.0,
                num_classes=7,
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            ),
            train_cfg=dict(),
            test_cfg=dict(mode='slide', crop_size=crop, stride=(stride, stride)),
        ),
        train_dataloader=dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(
                type='LoveDADataset',
                data_root=train_root,
                data_prefix=prefix,
                pipeline=train_pipeline,
            ),
        ),
        test_dataloader=dict(
            batch_size=1,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='LoveDADataset',
                data_root=test_root,
                data_prefix=prefix,
                indices=list(test_indices),
                pipeline=test_pipeline,
            ),
        ),
        test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        optim_wrapper=optim_wrapper,
        param_scheduler=param_scheduler,
    )
    cfg.update(_runtime('mmseg', seed, work_dir, name, iters))
    return cfg
