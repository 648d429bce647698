# Copyright (c) pera-mm contributors. All rights reserved.
"""Run a shipped pretraining config at a small size: same algorithm, tiny shapes.

Tests and benchmarks both need "this config, but on a small ViT, small crops and
a few prototypes". Dimensions that a config derives (head widths from the
backbone, loss widths from the head) are left to the model; only what sets the
size is changed.
"""

import copy
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import default_collate


def shrink_model_config(
    model: dict,
    arch: Union[str, dict],
    img_size: int,
    prototypes: int,
    hidden_channels: Optional[int] = None,
    bottleneck_channels: Optional[int] = None,
    **backbone_overrides,
) -> dict:
    """A copy of a PerA-family ``model`` config with a smaller ViT and heads.

    Args:
        model (dict): the ``model`` field of a shipped config.
        arch (str | dict): ``PerAViT`` arch name or dict.
        img_size (int): pretraining image size (position grid).
        prototypes (int): prototypes of the DINO head.
        hidden_channels (int, optional): hidden width of the heads' MLPs.
        bottleneck_channels (int, optional): bottleneck width of the heads.
        **backbone_overrides: further ``PerAViT`` arguments.

    Returns:
        dict: the shrunk config; build it with MMPretrain's ``MODELS``.
    """
    m = copy.deepcopy(dict(model))
    m['backbone'] = dict(
        m['backbone'], arch=arch, img_size=img_size, with_cp=False, **backbone_overrides
    )
    # a shrunk ViT cannot take the full-size weights a continued-pretraining config names
    m['backbone'].pop('init_cfg', None)
    heads = dict()
    if hidden_channels is not None:
        heads['hidden_channels'] = hidden_channels
    if bottleneck_channels is not None:
        heads['bottleneck_channels'] = bottleneck_channels
    m['projector'] = dict(m['projector'], out_channels=prototypes, **heads)
    m['projector'].pop('in_channels', None)
    if m.get('predictor'):
        m['predictor'] = dict(m['predictor'], **heads)
        m['predictor'].pop('in_channels', None)
    for key in ('cls_loss', 'patch_loss'):
        if m.get(key):
            m[key] = dict(m[key])
            m[key].pop('out_channels', None)
    return m


def shrink_pipeline(
    pipeline: Sequence[dict],
    global_crop_size: int,
    local_crop_size: int,
    num_local_crops: int,
    mask_ratios: Optional[Sequence[float]] = None,
) -> List[dict]:
    """The config's transforms after file loading, at smaller crops.

    Args:
        pipeline (Sequence[dict]): ``train_dataloader.dataset.pipeline``.
        global_crop_size (int): side of the global crops.
        local_crop_size (int): side of the local crops.
        num_local_crops (int): local crop pairs.
        mask_ratios (Sequence[float], optional): replaces the s/l/t ratios of a
            disjoint-mode ``DisjointMaskGenerator``.

    Returns:
        list[dict]: transform configs (the loading step dropped), to be built
        with MMPretrain's ``TRANSFORMS``.
    """
    out = []
    for t in pipeline[1:]:  # in-memory images: no file loading
        t = dict(t)
        if t['type'] == 'PerAMultiCropViews':
            t.update(
                global_crop_size=global_crop_size,
                local_crop_size=local_crop_size,
                num_local_crops=num_local_crops,
            )
        if (
            mask_ratios is not None
            and t['type'] == 'DisjointMaskGenerator'
            and t.get('mode', 'disjoint') == 'disjoint'
        ):
            t['mask_ratios'] = tuple(mask_ratios)
        out.append(t)
    return out


def synthetic_batch(transforms: Sequence, batch_size: int, side: int, seed: int = 0) -> dict:
    """Collate ``batch_size`` random uint8 images of ``side`` px through built transforms.

    Args:
        transforms (Sequence[callable]): built transforms (e.g. from
            :func:`shrink_pipeline`).
        batch_size (int): samples.
        side (int): source image side.
        seed (int): NumPy seed of the pixels (the transforms draw from the
            global generators).

    Returns:
        dict: ``default_collate`` output (``inputs``, ``data_samples``).
    """
    rng = np.random.RandomState(seed)
    samples = []
    for i in range(batch_size):
        results = dict(
            img=rng.randint(0, 256, (side, side, 3), dtype=np.uint8),
            img_path=f'synthetic_{i}.png',
            img_shape=(side, side),
            ori_shape=(side, side),
        )
        for t in transforms:
            results = t(results)
        samples.append(results)
    return default_collate(samples)


#: A 4-block, 64-wide ViT: the smallest that still has a mid-depth mask-token layer.
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)


def build_small_model(config, prototypes: int = 256, seed: int = 0):
    """Build a shipped config's model at test size, with its transforms.

    ViT :data:`TINY_ARCH` at 4 x 4 patches (64 px at patch 16), heads 96/32 wide,
    ``prototypes`` prototypes, global crops of 4 and local crops of 2 patches a side
    (2 local pairs); weights initialised from ``seed``.

    Args:
        config (str | Path): path of a pretraining config.
        prototypes (int): prototypes of the DINO head. Defaults to 256.
        seed (int): torch and NumPy seed of the initialisation. Defaults to 0.

    Returns:
        tuple: (model, list of built transforms without file loading).
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS, TRANSFORMS

    torch.manual_seed(seed)
    np.random.seed(seed)
    cfg = Config.fromfile(config)
    # nested builds resolve in the current default scope, which a Runner of
    # another toolbox (mmseg, mmdet) may have left behind
    patch = cfg.model.backbone.get('patch_size', 16)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            shrink_model_config(
                cfg.model,
                TINY_ARCH,
                4 * patch,
                prototypes,
                hidden_channels=96,
                bottleneck_channels=32,
            )  # fmt: skip
        )
        model.init_weights()
        transforms = [
            TRANSFORMS.build(t)
            for t in shrink_pipeline(cfg.train_dataloader.dataset.pipeline, 4 * patch, 2 * patch, 2)
        ]
    return model, transforms
