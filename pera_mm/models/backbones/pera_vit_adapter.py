# Copyright (c) pera-mm contributors. All rights reserved.
"""ViT-Adapter dense-prediction backbone around the ``PerAViT`` blocks."""

from functools import partial
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS as DET_MODELS
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch.utils.checkpoint import checkpoint

from ...utils.errors import PeraConfigError
from ..utils import infer_square_grid, resize_pos_embed
from ..utils.adapter_modules import (
    InteractionBlock,
    MSDeformAttn,
    SpatialPriorModule,
    build_deform_inputs,
)
from .pera_vit import (
    PerAViT,
    check_frozen_stages,
    frozen_modules,
    load_pretrained_init,
    vit_layer_depth,
)


class PerAViTAdapter(BaseModule):
    """ViT-Adapter backbone: a ``PerAViT`` with a spatial prior and interactions.

    A conv spatial prior module (SPM) gives 1/4, 1/8, 1/16 and 1/32 maps. The ViT
    runs on the 1/16 token grid in ``len(interaction_indexes)`` (= 4) slices; before
    each slice an injector adds deformable attention over the 1/8-1/32 prior to
    the tokens, after it an extractor (and, after the last slice, extra
    extractors) updates the prior from the tokens. The outputs are four
    ``embed_dims``-channel maps at strides 4, 8, 16, 32, each passed through a norm
    from ``norm_cfg``; with ``add_vit_feature`` the token map after each slice is
    resized to the level's stride and added.

    The ViT part holds the ``patch_embed``, ``pos_embed`` and ``blocks`` of a
    ``PerAViT`` under the same names, so a pretraining backbone state dict loads
    into it as is (its final ``norm`` is not used here, nor its ``cls_token``
    unless ``with_cls_token``). The position embedding keeps the
    ``pretrain_size`` grid and is resized to the input's grid on every forward
    by ``pos_resize``.

    The ``PerAViT`` options of public weights are taken as well (see
    ``docs/public_weights.md``): register tokens, ``norm_eps``,
    ``qkv_bias='qv'``, the SwiGLU MLP, the position layouts without a cls slot
    (or without a table, for RoPE), the resize conventions and DINOv3's RoPE.
    Prefix tokens (cls, registers) run through the ViT slices beside the patch
    tokens; the injectors, extractors and output maps see the patches only. With
    RoPE each patch token is rotated by its coordinates on the adapter's 1/16
    grid, the prefix tokens are not rotated.

    Stochastic depth: every ViT block and every extractor ConvFFN use the same
    rate ``drop_path_rate`` (the ViT-Adapter rule), sampled per row by default.

    Args:
        arch (str | dict): ``PerAViT`` architecture ('base', 'large',
            'giant-1024', ... or a dict with embed_dims, num_layers, num_heads,
            feedforward_channels).
        pretrain_size (int): image size of pretraining; sets the stored position grid.
        patch_size (int): ViT patch size. The adapter works on the 1/16 grid; for
            another patch size ``p`` (e.g. 14) the patch embedding alone sees the
            input resized bilinearly to ``(H / 16 * p, W / 16 * p)``, so the ViT
            tokens fall on the 1/16 grid exactly (the SPM sees the input as is).
        in_channels (int): input bands.
        qkv_bias (bool | str): qkv bias of the ViT blocks (True, False or
            ``'qv'``: q and v biases only, DINOv3's).
        drop_path_rate (float): stochastic depth rate of every block and extractor.
        drop_path_mode (str): 'row' (per-sample) or 'subset' for the ViT blocks.
        layer_scale_init_value (float): > 0 enables LayerScale in the ViT blocks
            (must match the pretrained checkpoint).
        conv_inplane (int): SPM stem width.
        n_points (int): deformable sampling points per head and level.
        deform_num_heads (int): deformable attention heads.
        init_values (float): initial injector ``gamma``.
        interaction_indexes (Sequence[Sequence[int]], optional): 4 contiguous
            inclusive ``[first, last]`` block ranges covering all blocks;
            default: the blocks split in four equal parts.
        with_cffn (bool): ConvFFN in the extractors.
        cffn_ratio (float): ConvFFN hidden width ratio.
        deform_ratio (float): value projection ratio of the deformable attention
            (default 1.0, as the released PerA downstream code; the ViT-Adapter
            reference configs use 0.5).
        add_vit_feature (bool): add the resized ViT token maps to the outputs.
        use_extra_extractor (bool): two extra extractors after the last interaction.
        norm_cfg (dict): norm of the SPM and of the four outputs
            (``dict(type='SyncBN')`` on GPUs). Defaults to ``dict(type='BN')``.
        with_cp (bool): activation checkpointing of the blocks and interactions.
        frozen_stages (int): -1 (default) freezes nothing; ``n >= 0`` freezes the
            ViT embedding (patch and position embedding, cls and register tokens)
            and the first ``n`` blocks (``requires_grad=False``, eval mode also
            after ``train()``); the adapter modules stay trainable.
        num_register_tokens (int): register tokens of the ViT (DINOv2-reg,
            DINOv3 storage tokens); they need the cls token.
        norm_eps (float): eps of the ViT's LayerNorms (DINOv3: 1e-5).
        mlp_type (str): 'mlp' (GELU) or 'swiglu'.
        pos_embed_layout (str): 'cls_slot', 'patch_only' or 'none' (needs ``rope``).
        pos_resize (str): 'offset' (bicubic with ``scale_factor = (dst +
            interpolate_offset) / src``) or 'antialias' (timm's).
        interpolate_offset (float): the offset of ``pos_resize='offset'``; the
            default 0 is plain bicubic to the size (the released ViT-Adapter's),
            DINOv2's is 0.1.
        rope (dict, optional): DINOv3's rotary position embedding (the
            ``PerAViT`` argument).
        with_cls_token (bool, optional): run the cls token through the blocks
            with the patches (BEiT-Adapter style). Default: only when the ViT
            has register tokens, so the ViT sees the token set it was trained
            with; without registers the patches run alone (ViT-Adapter).
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)``
            initialises everything randomly and then loads the ViT weights from a
            PerA training checkpoint (teacher backbone; ``part='student'`` for the
            student), ``extract_backbone`` output or the released PerA layout,
            logging the missing/unexpected keys (every ViT key must be found).
    """

    def __init__(
        self,
        arch: Union[str, dict] = 'base',
        pretrain_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        qkv_bias: Union[bool, str] = True,
        drop_path_rate: float = 0.0,
        drop_path_mode: str = 'row',
        layer_scale_init_value: float = 0.0,
        conv_inplane: int = 64,
        n_points: int = 4,
        deform_num_heads: int = 12,
        init_values: float = 0.0,
        interaction_indexes: Optional[Sequence[Sequence[int]]] = None,
        with_cffn: bool = True,
        cffn_ratio: float = 0.25,
        deform_ratio: float = 1.0,
        add_vit_feature: bool = True,
        use_extra_extractor: bool = True,
        norm_cfg: Optional[dict] = None,
        with_cp: bool = False,
        frozen_stages: int = -1,
        num_register_tokens: int = 0,
        norm_eps: float = 1e-6,
        mlp_type: str = 'mlp',
        pos_embed_layout: str = 'cls_slot',
        pos_resize: str = 'offset',
        interpolate_offset: float = 0.0,
        rope: Optional[dict] = None,
        with_cls_token: Optional[bool] = None,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        vit = PerAViT(
            arch=arch,
            img_size=pretrain_size,
            patch_size=patch_size,
            in_channels=in_channels,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            drop_path_mode=drop_path_mode,
            layer_scale_init_value=layer_scale_init_value,
            num_register_tokens=num_register_tokens,
            norm_eps=norm_eps,
            mlp_type=mlp_type,
            pos_embed_layout=pos_embed_layout,
            pos_resize=pos_resize,
            interpolate_offset=interpolate_offset,
            rope=rope,
        )
        C = self.embed_dims = vit.embed_dims
        self.num_layers = vit.num_layers
        self.patch_size, self.pos_grid = patch_size, vit.grid_size
        self.patch_embed, self.pos_embed, self.blocks = vit.patch_embed, vit.pos_embed, vit.blocks
        self.pos_embed_layout, self.pos_resize = pos_embed_layout, pos_resize
        self.interpolate_offset = interpolate_offset
        self.num_pos_slots = 1 if pos_embed_layout == 'cls_slot' else 0
        self.rope = vit.rope
        self._init_prefix_tokens(vit, with_cls_token)
        self.interaction_indexes = self._check_indexes(interaction_indexes, self.num_layers)
        self.add_vit_feature, self.with_cp = add_vit_feature, with_cp
        norm_cfg = norm_cfg or dict(type='BN')

        self.level_embed = nn.Parameter(torch.zeros(3, C))
        self.spm = SpatialPriorModule(in_channels, conv_inplane, C, norm_cfg)
        last = len(self.interaction_indexes) - 1
        self.interactions = nn.ModuleList(
            [
                InteractionBlock(
                    C,
                    num_heads=deform_num_heads,
                    num_points=n_points,
                    init_values=init_values,
                    deform_ratio=deform_ratio,
                    with_cffn=with_cffn,
                    cffn_ratio=cffn_ratio,
                    drop_path=drop_path_rate,
                    num_extra_extractors=2 if use_extra_extractor and i == last else 0,
                    with_cp=with_cp,
                )
                for i in range(len(self.interaction_indexes))
            ]
        )
        self.up = nn.ConvTranspose2d(C, C, 2, 2)
        for i in range(1, 5):
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, C)[1])
        self.frozen_stages = check_frozen_stages(frozen_stages, self.num_layers, 'PerAViTAdapter')
        self._freeze_stages()

    def _init_prefix_tokens(self, vit, with_cls_token):
        """Take the cls (if it runs) and register tokens of ``vit``."""
        self.num_register_tokens = vit.num_register_tokens
        if with_cls_token is None:
            with_cls_token = self.num_register_tokens > 0
        if not with_cls_token and self.num_register_tokens:
            raise PeraConfigError(
                'PerAViTAdapter: with_cls_token=False with num_register_tokens='
                f'{self.num_register_tokens}; register tokens run beside the cls token'
            )
        self.with_cls_token = bool(with_cls_token)
        if self.with_cls_token:
            self.cls_token = vit.cls_token
        self.register_tokens = vit.register_tokens
        self.num_prefix_tokens = int(self.with_cls_token) + self.num_register_tokens

    def _prefix_params(self):
        return [
            p
            for p in (self.pos_embed, getattr(self, 'cls_token', None), self.register_tokens)
            if p is not None
        ]

    # -------------------------------------------------- fine-tuning: lr decay, freezing
    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Depth of a parameter for layer-wise lr decay.

        ViT parts as ``PerAViT.get_layer_depth``: ``patch_embed`` and ``pos_embed``
        depth 0, ``blocks.i.*`` depth ``i + 1``. Adapter-only parameters (SPM,
        level embedding, interactions, ``up``, output norms) get depth
        ``num_layers + 1``, the full lr.

        Args:
            param_name (str): parameter name, e.g. ``'backbone.blocks.3.attn.qkv.weight'``.
            prefix (str): the backbone's prefix in ``param_name``.

        Returns:
            tuple[int, int]: the depth and the number of depths (``num_layers + 2``).
        """
        return vit_layer_depth(param_name, prefix, self.num_layers)

    def _freeze_stages(self):
        for module in frozen_modules(self, self.frozen_stages, with_cls_norm=False):
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if self.frozen_stages >= 0:
            for param in self._prefix_params():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the train mode; frozen ViT stages stay in eval mode."""
        super().train(mode)
        if mode and getattr(self, 'frozen_stages', -1) >= 0:
            for module in frozen_modules(self, self.frozen_stages, with_cls_norm=False):
                module.eval()
        return self

    @staticmethod
    def _check_indexes(indexes, depth) -> List[List[int]]:
        if indexes is None:
            if depth % 4:
                raise PeraConfigError(
                    f'PerAViTAdapter: give interaction_indexes for a depth '
                    f'of {depth} (not divisible by 4)'
                )
            q = depth // 4
            return [[i * q, (i + 1) * q - 1] for i in range(4)]
        indexes = [list(pair) for pair in indexes]
        expected_start = 0
        ok = len(indexes) == 4
        for pair in indexes:
            ok = ok and len(pair) == 2 and pair[0] == expected_start and pair[1] >= pair[0]
            expected_start = pair[-1] + 1 if pair else expected_start
        if not ok or expected_start != depth:
            raise PeraConfigError(
                f'PerAViTAdapter: interaction_indexes must be 4 contiguous '
                f'[first, last] block ranges covering blocks 0..{depth - 1}, '
                f'got {indexes}'
            )
        return indexes

    # ------------------------------------------------------------------ weights
    def init_weights(self):
        """Initialise the adapter, then load a ``Pretrained`` init_cfg's ViT weights.

        Truncated-normal linears, fan-out convs and the deformable-attention
        init; with a ``Pretrained`` init_cfg the ViT weights come from the file.
        """
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained_init(self, PerAViTAdapter)
            return
        super().init_weights()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.init_weights()
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for token in (getattr(self, 'cls_token', None), self.register_tokens):
            if token is not None:
                nn.init.normal_(token, std=1e-6)
        nn.init.normal_(self.level_embed)

    def _resize_table(self, table, src_hw, dst_hw, offset):
        """``table`` resized from ``src_hw`` to ``dst_hw`` by ``pos_resize``."""
        antialias = self.pos_resize == 'antialias'
        return resize_pos_embed(
            table,
            src_hw,
            dst_hw,
            num_extra_tokens=self.num_pos_slots,
            offset=0.0 if antialias else offset,
            antialias=antialias,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Resample a checkpoint's position grid to ``pretrain_size`` if it differs."""
        key = prefix + 'pos_embed'
        if (
            self.pos_embed is not None
            and key in state_dict
            and state_dict[key].shape != self.pos_embed.shape
        ):
            src = state_dict[key]
            src_grid = infer_square_grid(src.shape[1] - self.num_pos_slots)
            state_dict[key] = self._resize_table(src, src_grid, self.pos_grid, offset=0.0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ forward
    def _run_blocks(self, blocks, x, rope=None):
        for blk in blocks:
            if self.with_cp and x.requires_grad:
                x = checkpoint(blk, x, rope, use_reentrant=False)
            else:
                x = blk(x, rope)
        return x

    def embed_tokens(self, vit_in: torch.Tensor, grid) -> torch.Tensor:
        """Prefix (cls, registers) and patch tokens (B, P + h*w, C) with positions.

        Args:
            vit_in (Tensor): the ViT input, ``grid`` patches of ``patch_size``.
            grid (tuple): the (h, w) patch grid.
        """
        tokens = self.patch_embed.proj(vit_in).flatten(2).transpose(1, 2)
        table = None
        if self.pos_embed is not None:
            table = self._resize_table(self.pos_embed, self.pos_grid, grid, self.interpolate_offset)
            tokens = tokens + table[:, self.num_pos_slots :]
        if not self.num_prefix_tokens:
            return tokens
        prefix = []
        if self.with_cls_token:
            cls = self.cls_token
            prefix.append(cls + table[:, :1] if self.num_pos_slots and table is not None else cls)
        if self.register_tokens is not None:
            prefix.append(self.register_tokens)
        prefix = torch.cat(prefix, dim=1).expand(tokens.shape[0], -1, -1)
        return torch.cat([prefix, tokens], dim=1)

    def rope_sincos(self, grid, device):
        """RoPE ``(sin, cos)`` (1, P + h*w, head_dim) of the grid; None without RoPE.

        The coordinate augmentation (training only) is drawn once per call;
        the P prefix rows get no rotation.
        """
        if self.rope is None:
            return None
        coords = self.rope.augment(self.rope.grid_coords(grid, device))
        sin, cos = self.rope.sincos(coords.unsqueeze(0))
        p = self.num_prefix_tokens
        if p:
            sin = torch.cat([sin.new_zeros(1, p, sin.shape[-1]), sin], dim=1)
            cos = torch.cat([cos.new_ones(1, p, cos.shape[-1]), cos], dim=1)
        return sin, cos

    def forward(self, x: torch.Tensor) -> tuple:
        """Four (B, embed_dims, H/s, W/s) maps for s = 4, 8, 16, 32.

        Args:
            x (Tensor): (B, in_channels, H, W) with H and W divisible by 32.
        """
        B, _, H, W = x.shape
        if H % 32 or W % 32:
            raise PeraConfigError(
                f'PerAViTAdapter: input height and width must be divisible by 32, got {(H, W)}'
            )
        C = self.embed_dims
        h, w = H // 16, W // 16
        prior_grids = [(2 * h, 2 * w), (h, w), (h // 2, w // 2)]
        inj_inputs, ext_inputs = build_deform_inputs(H, W, x.device)

        c1, c2, c3, c4 = self.spm(x)
        c = torch.cat(
            [c2 + self.level_embed[0], c3 + self.level_embed[1], c4 + self.level_embed[2]], dim=1
        )

        vit_in = x
        if self.patch_size != 16:
            size = (h * self.patch_size, w * self.patch_size)
            vit_in = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        tokens = self.embed_tokens(vit_in, (h, w))
        rope = self.rope_sincos((h, w), x.device)
        p = self.num_prefix_tokens

        vit_maps = []
        for layer, (first, last) in zip(self.interactions, self.interaction_indexes):
            run = partial(self._run_blocks, self.blocks[first : last + 1], rope=rope)
            tokens, c = layer(tokens, c, run, inj_inputs, ext_inputs, prior_grids, p)
            vit_maps.append(tokens[:, p:].transpose(1, 2).reshape(B, C, h, w))

        n2, n3 = prior_grids[0][0] * prior_grids[0][1], h * w
        c2 = c[:, :n2].transpose(1, 2).reshape(B, C, 2 * h, 2 * w)
        c3 = c[:, n2 : n2 + n3].transpose(1, 2).reshape(B, C, h, w)
        c4 = c[:, n2 + n3 :].transpose(1, 2).reshape(B, C, h // 2, w // 2)
        c1 = self.up(c2) + c1
        feats = [c1, c2, c3, c4]
        if self.add_vit_feature:
            for i, scale in enumerate((4, 2, 1, 0.5)):
                v = vit_maps[i]
                if scale != 1:
                    v = F.interpolate(v, scale_factor=scale, mode='bilinear', align_corners=False)
                feats[i] = feats[i] + v
        return tuple(getattr(self, f'norm{i + 1}')(f) for i, f in enumerate(feats))


for _registry in (MODELS, SEG_MODELS, DET_MODELS):
    _registry.register_module(module=PerAViTAdapter)
