# Copyright (c) pera-mm contributors. All rights reserved.
"""Frozen image features of each pretraining algorithm, for the evaluation protocol.

A self-supervised algorithm has no ``predict`` mode (MMPretrain's
``BaseSelfSupervisor`` rejects it, and MAE's backbone masks unless told
``mask=None``), so each family gets a small adaptor that names the encoder the
protocol scores and how its tokens become one vector per image:

=====================  ==========================  ===================
algorithm              encoder                     default pooling
=====================  ==========================  ===================
PerA, DINOv2Baseline   EMA teacher backbone        cls token
MMPretrain MAE         ``backbone(mask=None)``     cls token
I-JEPA                 EMA target encoder          mean of patches
LatentMIM              EMA target encoder, no head mean of patches
=====================  ==========================  ===================
"""

from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmpretrain.registry import TASK_UTILS

from ..models.backbones.latent_mim_vit import gap_grid, gap_patchify
from ..utils.errors import PeraConfigError

POOLS = ('cls', 'mean')


def unwrap(model: nn.Module) -> nn.Module:
    """The algorithm inside a DDP/FSDP wrapper (the model itself otherwise)."""
    return model.module if is_model_wrapper(model) else model


def pool_tokens(tokens: torch.Tensor, pool: str, with_cls: bool = True) -> torch.Tensor:
    """(B, C) from a (B, [1 +] N, C) token sequence: the cls token or the patch mean."""
    if pool == 'cls':
        return tokens[:, 0]
    return tokens[:, int(with_cls) :].mean(dim=1)


class FeatureAdaptor:
    """Base of the adaptors: ``adaptor(model, images) -> (B, C)`` features.

    Args:
        pool (str, optional): 'cls' or 'mean' (mean of the patch tokens);
            None takes the family's default.
    """

    #: algorithm class names the adaptor serves (exact class or subclass)
    algorithms = ()
    default_pool = 'cls'
    pools = POOLS

    def __init__(self, pool: Optional[str] = None):
        pool = pool or self.default_pool
        if pool not in self.pools:
            raise PeraConfigError(
                f'{type(self).__name__}: pool must be one of {self.pools}, got {pool!r}'
            )
        self.pool = pool

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """Whether ``model`` is one of :attr:`algorithms` (by class name along its MRO)."""
        names = {c.__name__ for c in type(unwrap(model)).__mro__}
        return bool(names & set(cls.algorithms))

    def check(self, model: nn.Module) -> None:
        """One-line error when this adaptor does not serve ``model``."""
        if not self.supports(model):
            raise PeraConfigError(
                f'{type(self).__name__} serves {", ".join(self.algorithms)}, not '
                f'{type(unwrap(model)).__name__}; use feature_adaptor=dict(type="auto")'
            )

    def encoder(self, model: nn.Module) -> nn.Module:
        """The module whose weights the features come from (an extracted backbone loads here)."""
        raise NotImplementedError

    def features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B, C) float features of normalised (B, 3, H, W) images."""
        return self.features(unwrap(model), images).float()

    def describe(self) -> str:
        return f'{type(self).__name__}(pool={self.pool!r})'


@TASK_UTILS.register_module()
class TeacherBackboneFeatures(FeatureAdaptor):
    """PerA and the DINOv2-style baseline: the EMA teacher backbone on every patch."""

    algorithms = ('PerA', 'DINOv2Baseline')

    def encoder(self, model):
        return unwrap(model).teacher.backbone

    def features(self, model, images):
        tokens = self.encoder(model)(images, path='sparse', keep_idx=None)
        return pool_tokens(tokens, self.pool)


@TASK_UTILS.register_module()
class MAEEncoderFeatures(FeatureAdaptor):
    """MMPretrain's MAE: the encoder with masking off (``backbone(x, mask=None)``)."""

    algorithms = ('MAE',)

    def encoder(self, model):
        return unwrap(model).backbone

    def features(self, model, images):
        out = self.encoder(model)(images, mask=None)[-1]
        if out.ndim != 3:
            raise PeraConfigError(
                f"MAEEncoderFeatures: the MAE backbone must have out_type='raw' (tokens), "
                f'got output of shape {tuple(out.shape)}'
            )
        return pool_tokens(
            out, self.pool, with_cls=getattr(self.encoder(model), 'with_cls_token', True)
        )


@TASK_UTILS.register_module()
class IJEPATargetFeatures(FeatureAdaptor):
    """I-JEPA: mean of the EMA target encoder's final-normed patch tokens (no cls token)."""

    algorithms = ('IJEPA',)
    default_pool = 'mean'
    pools = ('mean',)

    def encoder(self, model):
        return unwrap(model).target_encoder

    def features(self, model, images):
        return self.encoder(model).forward_tokens(images).mean(dim=1)


@TASK_UTILS.register_module()
class LatentMIMTargetFeatures(FeatureAdaptor):
    """LatentMIM: the EMA target encoder (or the online one) on every patch, without the head.

    Args:
        pool (str, optional): 'mean' (default, the encoder's downstream
            ``avg_featmap``) or 'cls'.
        part (str): 'target' (default: the EMA encoder, the part LatentMIMViT
            loads downstream by default) or 'online'.
    """

    algorithms = ('LatentMIM',)
    default_pool = 'mean'

    def __init__(self, pool: Optional[str] = None, part: str = 'target'):
        super().__init__(pool)
        if part not in ('target', 'online'):
            raise PeraConfigError(
                f"LatentMIMTargetFeatures: part must be 'target' or 'online', got {part!r}"
            )
        self.part = part

    def encoder(self, model):
        model = unwrap(model)
        return model.target if self.part == 'target' else model.backbone

    def features(self, model, images):
        vit = self.encoder(model)
        gh, gw = gap_grid(images.shape[-2:], vit.patch_size, 0)
        ids = torch.arange(gh * gw, device=images.device).expand(images.shape[0], -1)
        patches = gap_patchify(images, vit.patch_size, 0)
        tokens = vit.forward_patches(patches, ids, (gh, gw), with_head=False)
        return pool_tokens(tokens, self.pool)

    def describe(self) -> str:
        return f'{type(self).__name__}(pool={self.pool!r}, part={self.part!r})'


ADAPTORS = (
    TeacherBackboneFeatures,
    MAEEncoderFeatures,
    IJEPATargetFeatures,
    LatentMIMTargetFeatures,
)


def build_feature_adaptor(cfg: Optional[dict], model: nn.Module) -> FeatureAdaptor:
    """The adaptor of ``cfg`` for ``model``.

    ``cfg`` None or ``dict(type='auto', **kwargs)`` picks the adaptor serving the
    model's class (kwargs such as ``pool`` are passed on); any other type is
    built from the registry and checked against the model.
    """
    cfg = dict(cfg or dict(type='auto'))
    kind = cfg.pop('type', 'auto')
    if kind == 'auto':
        matches = [a for a in ADAPTORS if a.supports(model)]
        if not matches:
            raise PeraConfigError(
                f'no feature adaptor for {type(unwrap(model)).__name__}; known algorithms: '
                f'{", ".join(n for a in ADAPTORS for n in a.algorithms)}'
            )
        adaptor = matches[0](**cfg)
    else:
        adaptor = TASK_UTILS.build(dict(type=kind, **cfg))
        if not isinstance(adaptor, FeatureAdaptor):
            raise PeraConfigError(f'feature adaptor {kind!r} is not a FeatureAdaptor')
    adaptor.check(model)
    return adaptor


def normalise_rgb(model: nn.Module, inputs) -> torch.Tensor:
    """Float, normalised (B, 3, H, W) model inputs from a batch of RGB uint8 images.

    The evaluation pipeline loads RGB, so only the mean/std of the model's data
    preprocessor are applied (its channel flip, for configs that load BGR, is
    not: their mean/std are already in RGB order).
    """
    model = unwrap(model)
    if isinstance(inputs, (list, tuple)):
        inputs = torch.stack(list(inputs))
    pre = getattr(model, 'data_preprocessor', None)
    x = inputs.to(next(model.parameters()).device).float()
    if x.ndim != 4 or x.shape[1] != 3:
        raise PeraConfigError(
            f'evaluation inputs must be RGB batches (B, 3, H, W), got {tuple(x.shape)}'
        )
    if pre is not None and getattr(pre, '_enable_normalize', False):
        x = (x - pre.mean.to(x)) / pre.std.to(x)
    return x


def batch_features(model: nn.Module, adaptor: FeatureAdaptor, data_batch: dict) -> List[dict]:
    """Per-sample ``feat``, ``gt_label`` and ``split`` of one evaluation batch."""
    samples = data_batch['data_samples']
    feats = adaptor(model, normalise_rgb(model, data_batch['inputs'])).cpu()
    out = []
    for feat, sample in zip(feats, samples):
        if 'split' not in sample:
            raise PeraConfigError(
                "evaluation data samples carry no 'split'; keep 'split' in the "
                "evaluation pipeline's PackInputs meta_keys"
            )
        out.append(dict(feat=feat, gt_label=int(sample.gt_label[0]), split=sample.split))
    return out
