# Copyright (c) pera-mm contributors. All rights reserved.
"""The DIOR detection configs: the paper's recipe (method.md 1.7), the adapter per size,
anchors, normalisation, metrics and layer decay."""

import math

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401  (registers the backbone, dataset, metric and constructor)
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.adapter_sizes import VIT_ADAPTER_SIZES
from pera_mm.testing.config_walk import iter_config_dicts

DET = REPO_ROOT / 'configs/detection'
PRETRAIN_DATA = REPO_ROOT / 'configs/_base_/datasets/pera_rsrsd-448px.py'
FULL = sorted(p for p in DET.glob('*.py') if not p.stem.endswith('_cpu-smoke'))
SMOKE = sorted(DET.glob('*_cpu-smoke.py'))


def _load(path):
    return Config.fromfile(str(path), import_custom_modules=False)


def _types(node, found):
    found.update(d['type'] for d in iter_config_dicts(node) if isinstance(d.get('type'), str))
    return found


def test_every_size_is_shipped():
    assert [p.stem for p in FULL] == [
        f'faster-rcnn_pera-vit-adapter-{size}-p16_fpn_8xb2-100e_dior-512x512'
        for size in ('base', 'giant1024', 'large')
    ]
    assert [p.stem for p in SMOKE] == [
        'faster-rcnn_pera-vit-adapter-tiny-p16_fpn_1xb2-4iter_dior-128x128_cpu-smoke'
    ]


@pytest.mark.parametrize('path', FULL, ids=lambda p: p.stem)
def test_paper_recipe(path):
    cfg = _load(path)
    size = path.stem.split('_')[1].split('-')[3]
    dims, heads, indexes, with_cp = VIT_ADAPTER_SIZES[size]
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['pera_mm']
    bb = cfg.model.backbone
    assert bb.type == 'PerAViTAdapter' and bb.arch == {'giant1024': 'giant-1024'}.get(size, size)
    assert (bb.deform_num_heads, bb.interaction_indexes, bb.with_cp) == (heads, indexes, with_cp)
    assert bb.drop_path_rate == 0.3 and bb.pretrain_size == 448 and bb.patch_size == 16
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.checkpoint.endswith('epoch_200.pth')
    assert cfg.model.neck.type == 'FPN' and cfg.model.neck.in_channels == [dims] * 4
    assert cfg.model.neck.num_outs == 5 and cfg.model.roi_head.bbox_head.num_classes == 20

    # RPN NMS 0.8 in training and testing; score threshold 0.01, 200 detections per image
    assert cfg.model.train_cfg.rpn_proposal.nms.iou_threshold == 0.8
    assert cfg.model.test_cfg.rpn.nms.iou_threshold == 0.8
    assert cfg.model.test_cfg.rcnn.score_thr == 0.01
    assert cfg.model.test_cfg.rcnn.max_per_img == 200

    # normalisation of the PerA pretraining, images converted to RGB
    pre = _load(PRETRAIN_DATA).data_preprocessor
    dp = cfg.model.data_preprocessor
    assert (dp.mean, dp.std, dp.bgr_to_rgb) == (pre.mean, pre.std, True)
    assert dp.pad_size_divisor == 32

    # data: trainval for training, test for testing, resize 512, flips + colour jitter
    train, test = cfg.train_dataloader.dataset, cfg.test_dataloader.dataset
    assert (train.type, train.split, test.split) == ('DIORDataset', 'trainval', 'test')
    steps = {t.type: t for t in train.pipeline}
    assert steps['Resize'].scale == (512, 512)
    flips = [t.direction for t in train.pipeline if t.type == 'RandomFlip']
    assert flips == ['horizontal', 'vertical'] and 'PhotoMetricDistortion' in steps
    assert [t.scale for t in test.pipeline if t.type == 'Resize'] == [(512, 512)]

    # AdamW lr 1e-4, wd 1e-3, cosine, 100 epochs, total batch 16 (8 x 2)
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == (
        'AdamW',
        1e-4,
        1e-3,
    )
    assert opt.constructor == 'LayerDecayOptimWrapperConstructor'
    (sched,) = cfg.param_scheduler
    assert sched.type == 'mmpretrain.WarmupCosineParamScheduler' and sched.final_value == 0.0
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16

    # metrics: VOC area AP (not the 11-point default) and the COCO-style AP at test time
    assert cfg.val_evaluator.type == 'VOCMetric' and cfg.val_evaluator.eval_mode == 'area'
    assert [m.type for m in cfg.test_evaluator] == ['VOCMetric', 'CocoStyleAPMetric']
    assert cfg.default_hooks.checkpoint.save_best == 'voc_area/mAP'


@pytest.mark.parametrize('path', FULL + SMOKE, ids=lambda p: p.stem)
def test_every_type_is_registered(path):
    import mmcv.ops
    from mmdet.registry import DATA_SAMPLERS, DATASETS, METRICS, MODELS, TASK_UTILS, TRANSFORMS
    from mmengine.registry import WEIGHT_INITIALIZERS

    cfg = _load(path)
    registries = (MODELS, TASK_UTILS, DATASETS, DATA_SAMPLERS, TRANSFORMS, METRICS)
    found = set()
    for field in ('model', 'train_dataloader', 'test_dataloader', 'test_evaluator'):
        _types(cfg[field], found)
    # RoIAlign and nms are mmcv ops taken by name, Pretrained an init_cfg
    assert {'RoIAlign', 'nms', 'Pretrained'} <= found
    assert hasattr(mmcv.ops, 'RoIAlign') and hasattr(mmcv.ops, 'nms')
    assert WEIGHT_INITIALIZERS.get('Pretrained') is not None
    with DefaultScope.overwrite_default_scope('mmdet'):
        missing = [
            t
            for t in sorted(found - {'RoIAlign', 'nms', 'Pretrained'})
            if not any(r.get(t) is not None for r in registries)
        ]
    assert not missing


def test_anchors_cover_4_to_512_px_with_ratios_0_2_to_5():
    from mmdet.registry import TASK_UTILS

    cfg = _load(FULL[0])
    with DefaultScope.overwrite_default_scope('mmdet'):
        generator = TASK_UTILS.build(cfg.model.rpn_head.anchor_generator)
    assert generator.strides == [(s, s) for s in (4, 8, 16, 32, 64)]
    sizes, ratios = [], set()
    for level in generator.base_anchors:
        w, h = level[:, 2] - level[:, 0], level[:, 3] - level[:, 1]
        sizes.append(sorted({round(math.sqrt(a)) for a in (w * h).tolist()}))
        ratios |= {round(r, 3) for r in (h / w).tolist()}
    assert sizes == [[4, 8], [16, 32], [64, 128], [128, 256], [256, 512]]
    assert sorted({s for level in sizes for s in level}) == [2**k for k in range(2, 10)]
    assert sorted(ratios) == [0.2, 0.5, 1.0, 2.0, 5.0]
    assert generator.num_base_priors == [10] * 5


def test_layer_decay_on_the_smoke_detector():
    from mmdet.registry import MODELS

    cfg = _load(SMOKE[0])
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr = cfg.optim_wrapper.optimizer.lr
    by_name = {
        name: (group['lr'], group['weight_decay'])
        for group in wrapper.optimizer.param_groups
        for name in group['param_names']
    }
    assert len(by_name) == sum(1 for p in model.parameters() if p.requires_grad)
    # 4 blocks: num_depths 6; block i at depth i + 1 -> lr * 0.9 ** (4 - i)
    for i in range(4):
        key = f'backbone.blocks.{i}.attn.qkv.weight'
        assert by_name[key] == (pytest.approx(lr * 0.9 ** (4 - i)), 1e-3), key
    assert by_name['backbone.patch_embed.proj.weight'][0] == pytest.approx(lr * 0.9**5)
    assert by_name['backbone.pos_embed'] == (pytest.approx(lr * 0.9**5), 0.0)
    assert by_name['backbone.level_embed'] == (lr, 0.0)  # adapter-only: full lr, no decay
    for name, (group_lr, _) in by_name.items():
        if not name.startswith('backbone.'):  # FPN, RPN and RoI heads
            assert group_lr == lr, name
