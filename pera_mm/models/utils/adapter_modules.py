# Copyright (c) pera-mm contributors. All rights reserved.
"""Building blocks of the ViT-Adapter backbone (``PerAViTAdapter``).

- :class:`MSDeformAttn`: multi-scale deformable attention computing its own
  offsets, weights and value projection, with mmcv 2.1's kernels as the core.
  It returns the attention output only: the caller adds its own residual.
- :class:`SpatialPriorModule`: a small conv stem giving 1/4, 1/8, 1/16 and 1/32
  feature maps.
- :class:`Injector` (spatial prior → ViT tokens), :class:`Extractor` (ViT tokens
  → multi-scale prior, with a :class:`ConvFFN`), and :class:`InteractionBlock`
  running injector, a slice of ViT blocks and extractor(s).
"""

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction,
    multi_scale_deformable_attn_pytorch,
)
from torch.utils.checkpoint import checkpoint

from ...utils.errors import PeraConfigError
from .transformer_block import drop_path_rows

# (reference points, spatial shapes, level start index) of one attention direction
DeformInputs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _maybe_checkpoint(fn, *args, enabled: bool):
    """Run ``fn(*args)``, with activation checkpointing when enabled and needed."""
    if (
        enabled
        and torch.is_grad_enabled()
        and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    ):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def reference_points_for(shapes: Sequence[Tuple[int, int]], device) -> torch.Tensor:
    """Normalised (x, y) centres of every cell of each grid, concatenated.

    Args:
        shapes (Sequence[tuple]): (h, w) of each grid, in order.
        device: device of the result.

    Returns:
        Tensor: (1, sum(h*w), 1, 2), x and y in (0, 1).
    """
    points = []
    for h, w in shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        gy, gx = torch.meshgrid(ys, xs, indexing='ij')
        points.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1))
    return torch.cat(points, dim=0)[None, :, None]


def _levels(shapes: Sequence[Tuple[int, int]], device) -> Tuple[torch.Tensor, torch.Tensor]:
    spatial = torch.as_tensor(list(shapes), dtype=torch.long, device=device)
    sizes = spatial.prod(1)
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    return spatial, start


def build_deform_inputs(h: int, w: int, device) -> Tuple[DeformInputs, DeformInputs]:
    """Sampling geometry of both attention directions for an ``h`` × ``w`` input.

    Injector: queries on the 1/16 grid, values on the 1/8, 1/16, 1/32 grids.
    Extractor: queries on the three prior grids, values on the 1/16 grid.

    Args:
        h (int): input height (divisible by 32).
        w (int): input width (divisible by 32).
        device: device of the tensors.

    Returns:
        tuple: ``(injector_inputs, extractor_inputs)``, each a tuple of
        reference points, spatial shapes and level start indices.
    """
    prior = [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    vit = [(h // 16, w // 16)]
    inj = (reference_points_for(vit, device), *_levels(prior, device))
    ext = (reference_points_for(prior, device), *_levels(vit, device))
    return inj, ext


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention; the output has no residual added.

    Each query predicts ``num_points`` sampling offsets per head and level around
    its reference point, and softmax weights over all levels and points of a
    head. The values are projected to ``int(dim * value_ratio)`` channels, sampled
    bilinearly (zero padding) and mixed, then projected back to ``dim``.

    The core runs mmcv's compiled ``MultiScaleDeformableAttnFunction`` for CUDA
    tensors and ``multi_scale_deformable_attn_pytorch`` otherwise, always in fp32
    with autocast off (the CUDA kernel takes only float and half).

    Args:
        dim (int): query and value width.
        num_levels (int): number of value feature levels.
        num_heads (int): attention heads; must divide ``int(dim * value_ratio)``.
        num_points (int): sampling points per head and level.
        value_ratio (float): width ratio of the value projection.
        im2col_step (int): batch chunk of the CUDA kernel.
    """

    def __init__(
        self,
        dim: int,
        num_levels: int = 1,
        num_heads: int = 8,
        num_points: int = 4,
        value_ratio: float = 1.0,
        im2col_step: int = 64,
    ):
        super().__init__()
        value_dim = int(dim * value_ratio)
        if value_dim % num_heads:
            raise PeraConfigError(
                f'deform_ratio * embed_dim ({value_dim}) must be divisible by '
                f'deform_num_heads ({num_heads})'
            )
        self.dim, self.value_dim = dim, value_dim
        self.num_levels, self.num_heads, self.num_points = num_levels, num_heads, num_points
        self.im2col_step = im2col_step
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, value_dim)
        self.output_proj = nn.Linear(value_dim, dim)

    def init_weights(self):
        """Reset to the standard deformable-attention start.

        Offsets lie on rays of increasing length, one direction per head; the
        attention weights start uniform; the projections are Xavier-uniform.
        """
        nn.init.zeros_(self.sampling_offsets.weight)
        angle = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        ray = torch.stack([angle.cos(), angle.sin()], dim=-1)
        ray = ray / ray.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        bias = ray.view(self.num_heads, 1, 1, 2) * steps
        bias = bias.expand(self.num_heads, self.num_levels, self.num_points, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """Attend from ``query`` (B, Lq, C) to the flattened levels ``value`` (B, Lv, C).

        Args:
            query (Tensor): (B, Lq, C).
            reference_points (Tensor): (1 or B, Lq, 1 or num_levels, 2), normalised x, y.
            value (Tensor): (B, Lv, C), the levels of ``spatial_shapes`` concatenated.
            spatial_shapes (Tensor): (num_levels, 2) long, (h, w) per level.
            level_start_index (Tensor): (num_levels, ) long.

        Returns:
            Tensor: (B, Lq, C).
        """
        B, Lq, _ = query.shape
        Lv = value.shape[1]
        H, L, P = self.num_heads, self.num_levels, self.num_points
        v = self.value_proj(value).view(B, Lv, H, self.value_dim // H)
        offsets = self.sampling_offsets(query).view(B, Lq, H, L, P, 2)
        weights = self.attention_weights(query).view(B, Lq, H, L * P)
        weights = weights.float().softmax(-1).view(B, Lq, H, L, P)
        # offsets are in cells of each level: divide by (w, h)
        normaliser = spatial_shapes.flip(-1).to(torch.float32)
        locations = (
            reference_points[:, :, None, :, None, :]
            + offsets.float() / normaliser[None, None, None, :, None, :]
        )
        out = self._core(v.float(), spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out.to(query.dtype))

    def _core(self, v, spatial_shapes, level_start_index, locations, weights):
        device_type = v.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            if v.is_cuda:
                return MultiScaleDeformableAttnFunction.apply(
                    v, spatial_shapes, level_start_index, locations, weights, self.im2col_step
                )
            return multi_scale_deformable_attn_pytorch(v, spatial_shapes, locations, weights)


class ConvFFN(nn.Module):
    """Feed-forward network with a depth-wise conv on the prior grids.

    A 3×3 depth-wise conv runs on each of the three prior grids (1/8, 1/16,
    1/32) between the two linear layers.

    Args:
        dim (int): token width.
        hidden_dim (int): hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Module()
        self.dwconv.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, grids: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """``x`` (B, N, C) holds the tokens of ``grids`` one after the other."""
        x = self.fc1(x)
        B, _, C = x.shape
        parts, start = [], 0
        for h, w in grids:
            part = x[:, start : start + h * w].transpose(1, 2).reshape(B, C, h, w)
            parts.append(self.dwconv.dwconv(part).flatten(2).transpose(1, 2))
            start += h * w
        return self.fc2(self.act(torch.cat(parts, dim=1)))


class Injector(nn.Module):
    """Injects the multi-scale prior into the ViT tokens.

    Deformable attention from the tokens to the prior, scaled per channel by
    ``gamma``, is added to the tokens.

    Args:
        dim (int): width.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points.
        num_levels (int): prior levels.
        deform_ratio (float): value projection ratio.
        init_values (float): initial ``gamma``.
        with_cp (bool): activation checkpointing.
    """

    def __init__(
        self,
        dim,
        num_heads=6,
        num_points=4,
        num_levels=3,
        deform_ratio=1.0,
        init_values=0.0,
        with_cp=False,
    ):
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MSDeformAttn(dim, num_levels, num_heads, num_points, deform_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def _forward(self, query, feat, ref, shapes, start):
        out = self.attn(self.query_norm(query), ref, self.feat_norm(feat), shapes, start)
        return query + self.gamma * out

    def forward(
        self, query: torch.Tensor, feat: torch.Tensor, deform_inputs: DeformInputs
    ) -> torch.Tensor:
        """ViT tokens ``query`` (B, N, C) updated from the prior ``feat`` (B, M, C)."""
        return _maybe_checkpoint(self._forward, query, feat, *deform_inputs, enabled=self.with_cp)


class Extractor(nn.Module):
    """Updates the multi-scale prior from the ViT tokens.

    Deformable attention from the prior to the tokens, then an optional ConvFFN,
    each as a residual branch.

    Args:
        dim (int): width.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points.
        num_levels (int): ViT token levels (1).
        deform_ratio (float): value projection ratio.
        with_cffn (bool): add the ConvFFN branch.
        cffn_ratio (float): ConvFFN hidden width ratio.
        drop_path (float): stochastic depth rate of the ConvFFN branch (per row).
        with_cp (bool): activation checkpointing.
    """

    def __init__(
        self,
        dim,
        num_heads=6,
        num_points=4,
        num_levels=1,
        deform_ratio=1.0,
        with_cffn=True,
        cffn_ratio=0.25,
        drop_path=0.0,
        with_cp=False,
    ):
        super().__init__()
        self.with_cp, self.with_cffn, self.drop_path = with_cp, with_cffn, drop_path
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MSDeformAttn(dim, num_levels, num_heads, num_points, deform_ratio)
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio))
            self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)

    def _forward(self, query, feat, ref, shapes, start, grids):
        query = query + self.attn(self.query_norm(query), ref, self.feat_norm(feat), shapes, start)
        if self.with_cffn:
            branch = self.ffn(self.ffn_norm(query), grids)
            query = query + drop_path_rows(branch, self.drop_path, self.training)
        return query

    def forward(
        self,
        query: torch.Tensor,
        feat: torch.Tensor,
        deform_inputs: DeformInputs,
        grids: Sequence[Tuple[int, int]],
    ) -> torch.Tensor:
        """Prior tokens ``query`` (B, M, C) on ``grids`` updated from ViT tokens ``feat``."""
        fn = lambda q, f, r, s, i: self._forward(q, f, r, s, i, grids)  # noqa: E731
        return _maybe_checkpoint(fn, query, feat, *deform_inputs, enabled=self.with_cp)


class InteractionBlock(nn.Module):
    """Injector, a slice of ViT blocks, then the extractor (+ extra extractors).

    Args:
        dim (int): width.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points.
        init_values (float): initial injector ``gamma``.
        deform_ratio (float): value projection ratio.
        with_cffn (bool): ConvFFN in the extractors.
        cffn_ratio (float): ConvFFN hidden width ratio.
        drop_path (float): extractor ConvFFN stochastic depth rate.
        num_extra_extractors (int): extractors run after the first one.
        with_cp (bool): activation checkpointing.
    """

    def __init__(
        self,
        dim,
        num_heads=6,
        num_points=4,
        init_values=0.0,
        deform_ratio=1.0,
        with_cffn=True,
        cffn_ratio=0.25,
        drop_path=0.0,
        num_extra_extractors=0,
        with_cp=False,
    ):
        super().__init__()
        self.injector = Injector(
            dim,
            num_heads,
            num_points,
            num_levels=3,
            deform_ratio=deform_ratio,
            init_values=init_values,
            with_cp=with_cp,
        )
        ext_kwargs = dict(
            num_heads=num_heads,
            num_points=num_points,
            num_levels=1,
            deform_ratio=deform_ratio,
            with_cffn=with_cffn,
            cffn_ratio=cffn_ratio,
            drop_path=drop_path,
            with_cp=with_cp,
        )
        self.extractor = Extractor(dim, **ext_kwargs)
        self.extra_extractors = (
            nn.ModuleList([Extractor(dim, **ext_kwargs) for _ in range(num_extra_extractors)])
            if num_extra_extractors
            else None
        )

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        run_blocks,
        inj_inputs: DeformInputs,
        ext_inputs: DeformInputs,
        prior_grids: Sequence[Tuple[int, int]],
        num_prefix_tokens: int = 0,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the updated ViT tokens ``x`` and prior tokens ``c``.

        Args:
            x (Tensor): ViT tokens (B, P + N, C): ``P`` prefix tokens (cls,
                registers), then the N patch tokens of the 1/16 grid.
            c (Tensor): prior tokens (B, M, C) on ``prior_grids``.
            run_blocks (callable): runs this block's slice of ViT blocks on tokens.
            inj_inputs (tuple): injector deformable inputs.
            ext_inputs (tuple): extractor deformable inputs.
            prior_grids (Sequence[tuple]): the (h, w) of the 1/8, 1/16, 1/32 grids.
            num_prefix_tokens (int): ``P``; the prefix tokens run through the
                blocks only, the injector and extractors see the patches.
        """
        p = num_prefix_tokens
        if p:
            x = torch.cat([x[:, :p], self.injector(x[:, p:], c, inj_inputs)], dim=1)
        else:
            x = self.injector(x, c, inj_inputs)
        x = run_blocks(x)
        patches = x[:, p:] if p else x
        c = self.extractor(c, patches, ext_inputs, prior_grids)
        for extractor in self.extra_extractors or ():
            c = extractor(c, patches, ext_inputs, prior_grids)
        return x, c


class SpatialPriorModule(nn.Module):
    """Conv stem giving the 1/4 map and the 1/8, 1/16, 1/32 token sequences.

    Args:
        in_channels (int): input bands.
        inplanes (int): stem width (``conv_inplane``).
        embed_dim (int): output width.
        norm_cfg (dict): norm of the conv layers (e.g. ``dict(type='SyncBN')``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        inplanes: int = 64,
        embed_dim: int = 768,
        norm_cfg: Optional[dict] = None,
    ):
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')

        def conv_bn_relu(cin, cout, stride):
            return [
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                build_norm_layer(norm_cfg, cout)[1],
                nn.ReLU(inplace=True),
            ]

        self.stem = nn.Sequential(
            *conv_bn_relu(in_channels, inplanes, 2),
            *conv_bn_relu(inplanes, inplanes, 1),
            *conv_bn_relu(inplanes, inplanes, 1),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.conv2 = nn.Sequential(*conv_bn_relu(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*conv_bn_relu(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*conv_bn_relu(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, 1)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Returns the 1/4 map (B, C, H/4, W/4) and (B, h*w, C) tokens at 1/8, 1/16, 1/32."""
        f1 = self.stem(x)
        f2 = self.conv2(f1)
        f3 = self.conv3(f2)
        f4 = self.conv4(f3)
        tokens = [
            fc(f).flatten(2).transpose(1, 2)
            for fc, f in ((self.fc2, f2), (self.fc3, f3), (self.fc4, f4))
        ]
        return [self.fc1(f1)] + tokens
