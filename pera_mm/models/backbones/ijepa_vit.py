# Copyright (c) pera-mm contributors. All rights reserved.
"""The I-JEPA context / target encoder: a ViT without cls token, with fixed sin-cos positions."""

from functools import partial
from typing import Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from ...structures import gather_tokens
from ...utils.errors import PeraConfigError
from ..utils import Block, sincos_pos_embed_2d, sincos_pos_embed_for_grid
from ..utils.pos_embed import SINCOS_GRID_MODES
from ..utils.weight_init import init_linear_and_norm_layers
from .pera_vit import vit_layer_depth


def check_patch_grid(owner: str, size_hw, patch_size: int, what: str = 'img_size'):
    """The patch grid of ``size_hw``; a one-line error when it is not divisible by the patch."""
    h, w = (int(s) for s in size_hw)
    if h % patch_size or w % patch_size:
        raise PeraConfigError(
            f'{owner}: {what} {h}x{w} is not divisible by patch_size {patch_size}; use a '
            f'multiple of {patch_size} (crop or resize the images)'
        )
    return h // patch_size, w // patch_size


def parse_vit_arch(owner: str, arch, arch_zoo: dict) -> dict:
    """``arch`` as a dict with embed_dims, num_layers, num_heads, feedforward_channels."""
    if isinstance(arch, str):
        if arch not in arch_zoo:
            raise PeraConfigError(
                f'{owner}: unknown arch {arch!r}; expected one of {sorted(arch_zoo)} or a dict'
            )
        return dict(arch_zoo[arch])
    needed = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
    if not isinstance(arch, dict) or not needed <= set(arch):
        raise PeraConfigError(
            f'{owner}: a custom arch must be a dict with keys {sorted(needed)}, got {arch!r}'
        )
    return dict(arch)


@MODELS.register_module()
class IJEPAViT(BaseModule):
    """Vision Transformer encoder of I-JEPA (context encoder and EMA target encoder).

    Patch embedding (a ``kernel = stride = patch`` convolution over any number of
    bands), fixed 2-D sin-cos positions added to the full grid, optionally a gather
    of the kept patches, pre-norm blocks (SDPA attention, exact GELU, LayerNorm eps
    1e-6) and a final LayerNorm. There is no cls token: downstream, the mean of the
    patch features (``out_type='avg_featmap'``) stands in for one.

    Args:
        arch (str | dict): 'tiny', 'small', 'base', 'large', 'huge', or a dict with
            embed_dims, num_layers, num_heads, feedforward_channels.
        img_size (int | tuple): pretraining image size (the native position grid).
        patch_size (int): patch size; ``img_size`` must be divisible by it.
        in_channels (int): input bands.
        qkv_bias (bool): bias of the qkv projections. Defaults to True.
        drop_path_rate (float): per-sample stochastic depth of every block.
        pos_embed_mode (str): 'recompute' (default: exact sin-cos of every grid) or
            'interpolate' (resize the native table, as the reference does).
        out_type (str): output of :meth:`forward`: 'raw' (B, N, C), 'featmap'
            (B, C, h, w) or 'avg_featmap' (B, C).
        with_cp (bool): activation checkpointing of every block.
        init_cfg (dict, optional): MMEngine init config (e.g. ``Pretrained``).
    """

    arch_zoo = {
        'tiny': dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        'small': dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
        'base': dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
        'large': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096),
        'huge': dict(embed_dims=1280, num_layers=32, num_heads=16, feedforward_channels=5120),
    }
    OUT_TYPES = ('raw', 'featmap', 'avg_featmap')

    def __init__(
        self,
        arch: Union[str, dict] = 'small',
        img_size: Union[int, tuple] = 224,
        patch_size: int = 14,
        in_channels: int = 3,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        pos_embed_mode: str = 'recompute',
        out_type: str = 'avg_featmap',
        with_cp: bool = False,
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        self.arch_settings = parse_vit_arch(name, arch, self.arch_zoo)
        C = self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        if out_type not in self.OUT_TYPES:
            raise PeraConfigError(
                f'{name}: out_type must be one of {self.OUT_TYPES}, got {out_type!r}'
            )
        if not isinstance(in_channels, int) or in_channels < 1:
            raise PeraConfigError(
                f'{name}: in_channels must be a positive int, got {in_channels!r}'
            )
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_size, self.patch_size, self.in_channels = img_size, patch_size, in_channels
        self.grid_size = check_patch_grid(name, img_size, patch_size)
        self.out_type, self.with_cp = out_type, with_cp

        if pos_embed_mode not in SINCOS_GRID_MODES:
            raise PeraConfigError(
                f'{name}: pos_embed_mode must be one of {SINCOS_GRID_MODES}, got {pos_embed_mode!r}'
            )
        if C % 4:
            raise PeraConfigError(
                f'{name}: sin-cos positions need embed_dims divisible by 4, got {C}'
            )
        self.pos_embed_mode = pos_embed_mode
        # fixed, but a parameter as in the reference: its checkpoints carry it and its EMA moves it
        self.pos_embed = nn.Parameter(sincos_pos_embed_2d(self.grid_size, C), requires_grad=False)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_channels, C, patch_size, patch_size)
        self.blocks = nn.ModuleList(
            [
                Block(
                    C,
                    self.arch_settings['num_heads'],
                    self.arch_settings['feedforward_channels'],
                    qkv_bias=qkv_bias,
                    drop_path=drop_path_rate,
                    drop_path_mode='row',
                )
                for _ in range(self.num_layers)
            ]
        )
        self.norm = nn.LayerNorm(C, eps=1e-6)

    def pos_embed_for(self, grid_hw) -> torch.Tensor:
        """The (1, h * w, C) position table of a patch grid (see ``pos_embed_mode``)."""
        return sincos_pos_embed_for_grid(
            self.pos_embed, self.grid_size, grid_hw, self.pos_embed_mode
        )

    def init_weights(self):
        """Trunc-normal(0.02) Linear/Conv weights, zero biases, unit LayerNorms, exact positions."""
        super().init_weights()
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            return
        init_linear_and_norm_layers(
            self, partial(nn.init.trunc_normal_, std=0.02), linear_types=(nn.Linear, nn.Conv2d)
        )
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed_2d(self.grid_size, self.embed_dims))

    def forward_tokens(self, x: torch.Tensor, keep_idx=None) -> torch.Tensor:
        """Final-normed patch tokens (B, N, C), or (B, K, C) of the patches at ``keep_idx``.

        Positions are added on the full grid before the gather, so each kept token
        carries its own position.

        Args:
            x (Tensor): (B, in_channels, H, W) images.
            keep_idx (Tensor, optional): (B, K) int64 patch indices in raster order.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise PeraConfigError(
                f'{type(self).__name__}: expected (B, {self.in_channels}, H, W) inputs '
                f'(in_channels={self.in_channels}), got shape {tuple(x.shape)}'
            )
        grid = check_patch_grid(type(self).__name__, x.shape[-2:], self.patch_size, 'input size')
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = x + self.pos_embed_for(grid).to(x.dtype)
        if keep_idx is not None:
            x = gather_tokens(x, keep_idx)
        for blk in self.blocks:
            if self.with_cp and x.requires_grad:
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor, keep_idx=None, tokens_only: bool = False):
        """Downstream features of every patch, shaped by ``out_type`` (a 1-tuple).

        With ``tokens_only`` (the pretraining path) it returns
        :meth:`forward_tokens` ``(x, keep_idx)`` instead. The host calls it this way
        because FSDP gathers a unit's parameters only in ``forward``, so the encoder
        can be one FSDP unit whose shards line up with its EMA twin.
        """
        if tokens_only:
            return self.forward_tokens(x, keep_idx=keep_idx)
        if keep_idx is not None:
            raise PeraConfigError(
                f'{type(self).__name__}: keep_idx is only used with tokens_only=True'
            )
        tokens = self.forward_tokens(x)
        if self.out_type == 'raw':
            return (tokens,)
        if self.out_type == 'avg_featmap':
            return (tokens.mean(dim=1),)
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        return (tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dims, h, w),)

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Layer-decay depth: embedding 0, block ``i`` ``i + 1``, final norm ``num_layers + 1``."""
        return vit_layer_depth(param_name, prefix, self.num_layers)
