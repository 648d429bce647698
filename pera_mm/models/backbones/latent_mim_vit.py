# Copyright (c) pera-mm contributors. All rights reserved.
"""The LatentMIM encoder: a ViT on flattened patches, with a cls token and an MLP head."""

from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError
from ..utils.grid_sincos_pos_embed import grid_sincos_pos_embed
from ..utils.normed_mlp_projector import NormedMLPProjector
from ..utils.transformer_block import Block
from ..utils.weight_init import init_linear_and_norm_layers

OUT_TYPES = ('cls_token', 'featmap', 'avg_featmap', 'raw')


def gap_grid(hw: Sequence[int], patch_size: int, patch_gap: int, field: str = 'inputs'):
    """The (rows, cols) cell grid of ``hw`` images; each side must be a multiple of the cell."""
    cell = patch_size + patch_gap
    h, w = int(hw[0]), int(hw[1])
    if h % cell or w % cell or not h or not w:
        raise PeraDataError(
            f'{field}: {h}x{w} images are not a multiple of patch_size + patch_gap = '
            f'{patch_size} + {patch_gap} = {cell} px on each side'
        )
    return h // cell, w // cell


def gap_patchify(images, patch_size, patch_gap, offset_row=None, offset_col=None):
    """Cut one ``patch_size`` window out of every ``patch_size + patch_gap`` cell.

    Args:
        images (Tensor): (B, C, H, W), H and W multiples of the cell.
        patch_size (int): window side P.
        patch_gap (int): the cell is ``P + patch_gap`` pixels.
        offset_row (Tensor, optional): (B, gh, gw) int, the window's first row
            inside each cell (0 when None).
        offset_col (Tensor, optional): (B, gh, gw) int, its first column.

    Returns:
        Tensor: (B, gh * gw, P * P * C), raster order over the cells, each
        patch vector in (p, q, c) channel-last order.
    """
    B, C = images.shape[:2]
    gh, gw = gap_grid(images.shape[-2:], patch_size, patch_gap)
    cell, P = patch_size + patch_gap, patch_size
    x = images.reshape(B, C, gh, cell, gw, cell).permute(0, 2, 4, 3, 5, 1)  # B gh gw r c C
    if patch_gap == 0:
        return x.reshape(B, gh * gw, P * P * C)
    ar = torch.arange(P, device=images.device)
    zeros = torch.zeros(B, gh, gw, dtype=torch.long, device=images.device)
    off_r = zeros if offset_row is None else offset_row.to(images.device, torch.long)
    off_c = zeros if offset_col is None else offset_col.to(images.device, torch.long)
    rows = (off_r[..., None] + ar)[..., None, None].expand(B, gh, gw, P, cell, C)
    x = torch.gather(x, 3, rows)
    cols = (off_c[..., None] + ar)[..., None, :, None].expand(B, gh, gw, P, P, C)
    x = torch.gather(x, 4, cols)
    return x.reshape(B, gh * gw, P * P * C)


@MODELS.register_module()
class LatentMIMViT(BaseModule):
    """The LatentMIM encoder (online and target) for any number of bands.

    Patches are flattened in (p, q, c) order and embedded by a ``Linear``; the
    sequence is ``[cls; embed(patches)] + pos`` with a frozen sin-cos table
    recomputed for each patch grid (:func:`grid_sincos_pos_embed`, zero cls
    row). Pre-norm blocks (:class:`Block`, fused SDPA attention, LN eps 1e-6),
    a final norm and, for pretraining, the MLP projection head on every token.

    ``forward_patches`` runs a subset of patches (the pretraining path, which
    the host reaches through ``forward(patches, patch_ids, grid_hw)``);
    ``forward(images)`` runs whole images cut into contiguous patches, without
    the head, for downstream use.

    Args:
        embed_dims (int): token width. Defaults to 384 (ViT-S).
        num_layers (int): blocks. Defaults to 12.
        num_heads (int): attention heads. Defaults to 6.
        mlp_ratio (float): MLP hidden width / token width. Defaults to 4.
        in_channels (int): image bands. Defaults to 3.
        patch_size (int): patch side. Defaults to 16.
        qkv_bias (bool): bias of the qkv projections. Defaults to True.
        drop_path_rate (float): stochastic depth, rising linearly over depth
            (row mode). Defaults to 0.
        projector (dict, optional): ``mlp_dim`` and ``mlp_depth`` of the MLP head
            (output width = ``embed_dims``); None builds no head.
        out_type (str): ``forward`` output: 'cls_token', 'featmap' (B, C, h, w),
            'avg_featmap' (mean patch token) or 'raw' (B, 1 + N, C).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH,
            part='target')`` loads an encoder ('target' = EMA, or 'online') of a
            LatentMIM checkpoint (the authors' or ours) with a key report;
            without one the reference init is used (xavier-uniform Linear, zero
            biases, unit LayerNorms, cls token N(0, 0.02)).
    """

    def __init__(
        self,
        embed_dims: int = 384,
        num_layers: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
        patch_size: int = 16,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        projector: Optional[dict] = dict(mlp_dim=4096, mlp_depth=3),
        out_type: str = 'avg_featmap',
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if out_type not in OUT_TYPES:
            raise PeraConfigError(
                f'LatentMIMViT: out_type must be one of {OUT_TYPES}, got {out_type!r}'
            )
        if embed_dims % 4:
            raise PeraConfigError(
                f'LatentMIMViT: embed_dims must be a multiple of 4 (sin-cos table), '
                f'got {embed_dims}'
            )
        self.embed_dims, self.num_layers = embed_dims, num_layers
        self.in_channels, self.patch_size, self.out_type = in_channels, patch_size, out_type
        self.patch_embed = nn.Linear(in_channels * patch_size * patch_size, embed_dims)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist() if num_layers else []
        self.blocks = nn.ModuleList(
            Block(
                embed_dims,
                num_heads,
                int(embed_dims * mlp_ratio),
                qkv_bias=qkv_bias,
                drop_path=rate,
                drop_path_mode='row',
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.head = None
        if projector is not None:
            unknown = sorted(set(projector) - {'mlp_dim', 'mlp_depth'})
            if unknown:
                raise PeraConfigError(
                    f"LatentMIMViT: unknown projector key(s) {unknown}; expected 'mlp_dim', "
                    f"'mlp_depth'"
                )
            self.head = NormedMLPProjector(
                embed_dims,
                projector.get('mlp_dim', 4096),
                embed_dims,
                depth=projector.get('mlp_depth', 3),
            )

    def init_weights(self):
        """The reference init, then the ``init_cfg`` checkpoint if one is given."""
        cfg = dict(self.init_cfg or {})
        if cfg and cfg.get('type') != 'Pretrained':
            return super().init_weights()
        init_linear_and_norm_layers(self, nn.init.xavier_uniform_)
        nn.init.normal_(self.cls_token, std=0.02)
        if cfg:
            if 'checkpoint' not in cfg:
                raise PeraConfigError(
                    f'LatentMIMViT: init_cfg of type Pretrained needs `checkpoint`, got {cfg}'
                )
            from ...utils.latent_mim_checkpoint import load_latent_mim_encoder

            load_latent_mim_encoder(self, cfg['checkpoint'], cfg.get('part', 'target'))

    def pos_table(self, grid_hw, like: torch.Tensor) -> torch.Tensor:
        """The (1 + gh * gw, C) position table of a grid, on ``like``'s device and dtype."""
        table = grid_sincos_pos_embed(grid_hw, self.embed_dims)
        return table.to(device=like.device, dtype=like.dtype)

    def forward_patches(self, patch_pix, patch_ids, grid_hw, with_head: bool = True):
        """Encode a subset of patches per image.

        Args:
            patch_pix (Tensor): (B, n, C * P * P) patch vectors ((p, q, c) order).
            patch_ids (Tensor): (B, n) raster ids of these patches in the grid.
            grid_hw (tuple[int, int]): the patch grid.
            with_head (bool): apply the MLP head. Defaults to True.

        Returns:
            Tensor: (B, 1 + n, C), the cls first, tokens in the order given.
        """
        x = self.patch_embed(patch_pix)
        table = self.pos_table(grid_hw, x)
        pos = torch.cat([table[:1].expand(x.shape[0], 1, -1), table[1:][patch_ids]], dim=1)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1) + pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if with_head and self.head is not None:
            x = self.head(x)
        return x

    def forward(self, x: torch.Tensor, patch_ids=None, grid_hw=None, with_head: bool = True):
        """Features of whole images (contiguous patches, no head), or the pretraining path.

        With ``patch_ids`` and ``grid_hw``, ``x`` holds patch vectors and the result
        is :meth:`forward_patches` (head included). The host calls it this way because
        FSDP gathers a unit's parameters only in ``forward``, so the encoder can be
        one FSDP unit whose shards line up with its EMA twin.

        Args:
            x (Tensor): (B, in_channels, H, W), H and W multiples of ``patch_size``;
                or (B, n, C * P * P) patch vectors with ``patch_ids``.
            patch_ids (Tensor, optional): (B, n) raster ids of the patches in ``x``.
            grid_hw (tuple[int, int], optional): their patch grid.
            with_head (bool): with ``patch_ids``, apply the MLP head. Defaults to True.

        Returns:
            tuple[Tensor]: one output of ``out_type``; with ``patch_ids`` the
            (B, 1 + n, C) tokens.
        """
        if patch_ids is not None:
            return self.forward_patches(x, patch_ids, grid_hw, with_head=with_head)
        if x.shape[1] != self.in_channels:
            raise PeraDataError(
                f'LatentMIMViT: inputs have {x.shape[1]} bands but in_channels is '
                f'{self.in_channels}'
            )
        gh, gw = gap_grid(x.shape[-2:], self.patch_size, 0)
        patches = gap_patchify(x, self.patch_size, 0)
        ids = torch.arange(gh * gw, device=x.device).expand(x.shape[0], -1)
        tokens = self.forward_patches(patches, ids, (gh, gw), with_head=False)
        if self.out_type == 'raw':
            return (tokens,)
        if self.out_type == 'cls_token':
            return (tokens[:, 0],)
        if self.out_type == 'avg_featmap':
            return (tokens[:, 1:].mean(1),)
        B, _, C = tokens.shape
        return (tokens[:, 1:].transpose(1, 2).reshape(B, C, gh, gw),)
