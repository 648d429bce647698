# Copyright (c) pera-mm contributors. All rights reserved.
"""The benchmarked methods, built from their own config files at a benchmark size.

- PerA and the DINOv2-style baseline: the shipped configs, shrunk with
  ``pera_mm.testing.shrink_model_config`` / ``shrink_pipeline``;
- MAE: MMPretrain's own base model config, with the encoder set to the same
  ViT and the decoder as that file states it (512 wide, 8 blocks, 16 heads,
  MLP ratio 4, for every encoder size, as in MAE itself);
- I-JEPA and LatentMIM (the cross-scale hosts): their paper configs with the
  encoder set to the same ViT width and depth, everything else as shipped
  (I-JEPA: patch 14, predictor 12 x 384, 4 target blocks; LatentMIM: patch 16
  in 20 px cells, 20 visible patches, decoder 3 x 256, 4096-wide MLP head).
  Their inputs keep the patch grid of the others where the patch allows: I-JEPA
  at ``img_size`` (224 px: a 16 x 16 grid of 14 px patches, as its paper),
  LatentMIM at ``img_size // 16`` cells of 20 px (224 -> 280 px, its paper
  size, the 14 x 14 grid of MAE and PerA at 224 px).

PerA, the baseline and MAE share the PerA config's optimizer wrapper
(AutoAmpOptimWrapper: bf16 autocast on GPU, fp32 on CPU; AdamW; gradient clip);
the hosts use their own configs' (AdamW with their parameter-group rules, no
clip).
"""

import copy

import _common as C
from mmengine.config import Config
from mmpretrain.registry import MODELS, TRANSFORMS

from pera_mm.models.backbones.pera_vit import PerAViT
from pera_mm.testing import shrink_model_config, shrink_pipeline

PERA_CFG = 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
BASELINE_CFG = 'configs/pera/ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py'
MAE_BASE_CFG = 'mmpretrain::_base_/models/mae_vit-base-p16.py'
IJEPA_CFG = 'configs/ijepa/ijepa_vit-small-p14_8xb8-300e_rgb-224px.py'
LATENT_MIM_CFG = 'configs/latent_mim/latent_mim_vit-small-p16_1xb128-300e_rsrsd-280px.py'
HOST_CFGS = {'ijepa': IJEPA_CFG, 'latent_mim': LATENT_MIM_CFG}
METHODS = ('pera', 'baseline', 'mae', 'pera_compile', 'ijepa', 'latent_mim')
# the common patch side whose grid the hosts' inputs keep (PerA, MAE: 16 px)
GRID_PATCH = 16

# The shipped recipe cuts 448 px global crops from 512 px RSRSD tiles; synthetic
# source images keep that tile / crop ratio so the crop scales act as in training.
TILE_SIDE, RECIPE_GLOBAL = 512, 448
# MAE's own augmentation (MMPretrain's MAE configs): one random-resized crop per image
MAE_CROP_SCALE = (0.2, 1.0)


def arch_dims(arch):
    """``PerAViT`` arch dict of a name (``'tiny'``, ``'small'``, ...) or a dict."""
    return dict(PerAViT.arch_zoo[arch]) if isinstance(arch, str) else dict(arch)


def input_size(spec):
    """Side of the images a method sees (see the module docstring)."""
    img = spec['img_size']
    if spec['method'] == 'ijepa':
        return img // 14 * 14
    if spec['method'] == 'latent_mim':
        return img // GRID_PATCH * 20
    return img


def source_side(img_size):
    """Side of the synthetic source image for ``img_size`` global crops."""
    return max(img_size, img_size * TILE_SIDE // RECIPE_GLOBAL)


def local_size_for(img_size, patch=16):
    """Local crop side at the recipe's global / local ratio (448 / 96), a patch multiple."""
    views = pipeline_step(Config.fromfile(C.REPO / PERA_CFG), 'PerAMultiCropViews')
    ratio = views['global_crop_size'] / views['local_crop_size']
    return max(patch, int(round(img_size / ratio / patch)) * patch)


def pipeline_step(cfg, type_name):
    """The ``type_name`` transform of a config's training pipeline."""
    return next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == type_name)


def ema_momentum(cfg):
    """The config's starting EMA momentum (``teacher_ema.momentum``, TeacherEMAHook)."""
    return cfg.get('teacher_ema', {}).get('momentum', 0.992)


def mae_model_config(arch, img_size, data_preprocessor):
    """MMPretrain's MAE base model config with its encoder set to ``arch`` at ``img_size``."""
    # MMEngine resolves the package-scoped name to the file installed with mmpretrain
    cfg = Config.fromstring(f"_base_ = '{MAE_BASE_CFG}'", '.py').model
    dims = arch_dims(arch)
    patch = cfg.backbone.patch_size
    cfg.backbone.update(arch=dims, img_size=img_size)
    cfg.neck.update(embed_dim=dims['embed_dims'], num_patches=(img_size // patch) ** 2)
    cfg.data_preprocessor = copy.deepcopy(data_preprocessor)
    return cfg


def host_build(method, arch, size):
    """Model config, input transforms, optimizer wrapper and EMA momentum of a host."""
    cfg = Config.fromfile(C.REPO / HOST_CFGS[method])
    dims, model_cfg = arch_dims(arch), copy.deepcopy(cfg.model)
    if method == 'ijepa':
        model_cfg.backbone.update(arch=dims, img_size=size)
        # below the paper's 16 x 16 grid (e.g. --quick) min_keep shrinks with the patch
        # count, so the smallest target block still keeps more than it
        patches = (size // model_cfg.backbone.patch_size) ** 2
        sampler = model_cfg.mask_sampler
        sampler['min_keep'] = min(sampler['min_keep'], max(1, sampler['min_keep'] * patches // 256))
    else:
        model_cfg.backbone.update(
            embed_dims=dims['embed_dims'],
            num_layers=dims['num_layers'],
            num_heads=dims['num_heads'],
            mlp_ratio=dims['feedforward_channels'] / dims['embed_dims'],
        )
    transforms = []
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'].startswith('Load'):
            continue  # synthetic images are already decoded
        t = copy.deepcopy(t)
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = size
        transforms.append(t)
    return model_cfg, transforms, copy.deepcopy(cfg.optim_wrapper), ema_momentum(cfg)


def build_method(spec):
    """Build one benchmark job's model and input transforms.

    Args:
        spec (dict): ``method``, ``arch``, ``img_size``, ``local_size``,
            ``num_local``, ``prototypes`` and ``mask_ratios`` (PerA's s, l, t).

    Returns:
        tuple: (model, built transforms, optimizer wrapper config, EMA momentum).
    """
    method, arch, img = spec['method'], spec['arch'], spec['img_size']
    if method not in METHODS:
        raise ValueError(f'method: expected one of {METHODS}, got {method!r}')
    pera_cfg = Config.fromfile(C.REPO / PERA_CFG)
    optim_cfg = copy.deepcopy(pera_cfg.optim_wrapper)
    momentum = ema_momentum(pera_cfg)
    if method in HOST_CFGS:
        model_cfg, transforms, optim_cfg, momentum = host_build(method, arch, input_size(spec))
    elif method == 'mae':
        model_cfg = mae_model_config(arch, img, pera_cfg.model.data_preprocessor)
        transforms = [
            dict(
                type='RandomResizedCrop',
                scale=img,
                crop_ratio_range=MAE_CROP_SCALE,
                backend='pillow',
                interpolation='bicubic',
            ),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'),
        ]
    else:
        cfg = Config.fromfile(C.REPO / BASELINE_CFG) if method == 'baseline' else pera_cfg
        model_cfg = shrink_model_config(
            cfg.model,
            arch=arch,
            img_size=img,
            prototypes=spec['prototypes'],
            compile=method == 'pera_compile',
        )
        transforms = shrink_pipeline(
            cfg.train_dataloader.dataset.pipeline,
            global_crop_size=img,
            local_crop_size=spec['local_size'],
            num_local_crops=spec['num_local'],
            mask_ratios=spec['mask_ratios'],
        )
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model, [TRANSFORMS.build(t) for t in transforms], optim_cfg, momentum
