from functools import partial
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from ...structures import gather_tokens
from ...utils.errors import PeraConfigError
from ..utils import Block, infer_square_grid, resize_pos_embed
from ..utils.onednn_linear import check_kernel, linear
from ..utils.rope import RotaryPositionEmbedding2D
from ..utils.weight_init import init_linear_and_norm_layers


def check_frozen_stages(frozen_stages, num_layers: int, owner: str) -> int:
    """``frozen_stages`` checked to be an int in ``[-1, num_layers]``."""
    if (
        not isinstance(frozen_stages, int)
        or isinstance(frozen_stages, bool)
        or not -1 <= frozen_stages <= num_layers
    ):
        raise PeraConfigError(
            f'{owner}: frozen_stages must be an int in [-1, {num_layers}], got {frozen_stages!r}'
        )
    return frozen_stages


def frozen_modules(vit, frozen_stages: int, with_cls_norm: bool):
    """The sub-modules ``frozen_stages`` freezes in a model holding ViT parts."""
    if frozen_stages < 0:
        return []
    modules = [vit.patch_embed] + list(vit.blocks[:frozen_stages])
    if with_cls_norm and frozen_stages == len(vit.blocks):
        modules.append(vit.norm)
    return modules


def vit_layer_depth(param_name: str, prefix: str, num_layers: int):
    """Layer-decay depth of a ViT parameter name (see ``PerAViT.get_layer_depth``)."""
    num_depths = num_layers + 2
    if not param_name.startswith(prefix):
        return num_layers + 1, num_depths
    name = param_name[len(prefix) :]
    if name in ('cls_token', 'pos_embed', 'register_tokens') or name.startswith('patch_embed.'):
        return 0, num_depths
    if name.startswith('blocks.'):
        return int(name.split('.')[1]) + 1, num_depths
    return num_layers + 1, num_depths


def load_pretrained_init(module, owner_cls):
    """Random init of ``module`` and then the ViT weights of its Pretrained init_cfg."""
    from ...utils.backbone_checkpoint import load_vit_checkpoint

    init_cfg = module.init_cfg
    module.init_cfg = None
    try:
        owner_cls.init_weights(module)
    finally:
        module.init_cfg = init_cfg
    if 'checkpoint' not in init_cfg:
        raise PeraConfigError(
            f'{owner_cls.__name__}: init_cfg of type Pretrained needs '
            f'`checkpoint`, got {dict(init_cfg)}'
        )
    load_vit_checkpoint(
        module,
        init_cfg['checkpoint'],
        prefix=init_cfg.get('prefix'),
        part=init_cfg.get('part', 'teacher'),
    )


def _expand_idx(idx, x):
    """(N, K) token indices expanded over the channels of ``x`` (N, L, C)."""
    return idx.unsqueeze(-1).expand(-1, -1, x.shape[-1])


def _call_block(block, x, rope=None, queries=None):
    """One block call; the unit ``torch.compile`` traces when compiling is on.

    A free function (not a bound method) so that copies of the backbone never
    share a compiled closure over the original's blocks.
    """
    return block(x, rope, queries)


#: learned position tables: with a slot for the cls token, patches only, or none (RoPE only)
POS_EMBED_LAYOUTS = ('cls_slot', 'patch_only', 'none')
#: how a learned table is resized to another grid at run time
POS_RESIZE_MODES = ('offset', 'antialias')
#: how the student's mask tokens join the visible tokens (see ``forward_student``)
MASK_TOKEN_INSERTS = ('scatter', 'gather')


@MODELS.register_module()
class PerAViT(BaseModule):
    """Vision Transformer for PerA pretraining and for downstream use.

    Three paths share one set of weights:

    - ``forward(img)``: the dense downstream path (every patch), returning
      feature maps / cls tokens like MMPretrain's ``VisionTransformer``.
    - ``forward_sparse(img, keep_idx)``: cls + the kept patches only, through all
      blocks (the teacher path, and the student on local crops); with
      ``cls_only=True`` just the final-normed cls token. Position
      embeddings are added to the full grid before the gather, so each kept
      token carries its own position and no compute is spent on dropped ones.
      With RoPE the grid coordinates are gathered the same way: each kept
      token is rotated by its own coordinates in every block.
    - ``forward_student(img, s_idx, l_idx, mask_token)``: cls + s patches through
      the first ``mask_token_layer`` blocks, then the mask tokens (shared vector +
      the position embedding of their slot, and with RoPE the coordinates of
      their slot) are inserted in raster order among the s tokens and the
      remaining blocks see cls + s + l.

    Register tokens (``num_register_tokens``, DINOv2-reg / DINOv3 "storage"
    tokens) follow the cls token, ``[cls, registers, patches]``, in every path;
    they get neither a position nor a rotation. The training paths return cls +
    patch tokens only (registers are internal), ``out_type='raw'`` returns the
    whole sequence and :meth:`forward_features` all three parts.

    Args:
        arch (str | dict): 'tiny', 'small', 'base', 'large', 'giant-1024', or a
            dict with embed_dims, num_layers, num_heads, feedforward_channels.
        img_size (int): pretraining image size (sets the position grid).
        patch_size (int): patch size; ``img_size`` must be divisible by it.
        in_channels (int): input bands.
        drop_path_rate (float): uniform stochastic-depth rate of every block.
        drop_path_mode (str): 'subset' (batch-subset, released PerA code) or 'row'.
        layer_scale_init_value (float): > 0 enables LayerScale.
        mask_token_layer (int, optional): block before which mask tokens are
            inserted; default ``num_layers // 2``.
        interpolate_offset (float): pos-embed resize convention for crops of
            another size at run time (0.1 = the released code's and DINOv2's)
            when ``pos_resize='offset'``.
        num_register_tokens (int): register tokens after the cls token (0 = none).
        norm_eps (float): eps of every LayerNorm (1e-6; DINOv3 uses 1e-5).
        mlp_type (str): 'mlp' (GELU) or 'swiglu' (``feedforward_channels`` is
            then the width of the gated product).
        pos_embed_layout (str): 'cls_slot' (learned table with a cls entry, ours,
            DINOv2, timm's default), 'patch_only' (patches only, timm's
            ``no_embed_class``, e.g. the DINOv2 register models) or 'none' (no
            learned table; needs ``rope``).
        pos_resize (str): run-time resize of the learned table to another grid:
            'offset' (bicubic with ``scale_factor=(dst + interpolate_offset) /
            src``, DINOv2's) or 'antialias' (bicubic to the exact size with
            antialiasing, timm's ``resample_abs_pos_embed``).
        rope (dict, optional): DINOv3 rotary position embedding, the keyword
            arguments of :class:`~pera_mm.models.utils.rope.RotaryPositionEmbedding2D`
            (``base=100``, ``normalize_coords``, ``shift_coords``,
            ``jitter_coords``, ``rescale_coords``). None (default) = no RoPE.
        out_indices (Sequence[int] | int): blocks whose outputs ``forward`` returns.
        out_type (str): 'cls_token', 'featmap', 'avg_featmap' or 'raw'.
        final_norm (bool): apply the final LayerNorm to the last block's output.
        with_cp (bool): activation checkpointing of every block.
        compile (bool | dict): ``torch.compile`` each block call (dict = the
            keyword arguments of ``torch.compile``, e.g. ``dict(mode=
            'max-autotune')``). Blocks see a few distinct sequence lengths per
            step (student early/late, teacher, local crops), so dynamic shapes
            are on by default. Weights and state-dict keys are unchanged.
        subset_rows (str): how the 'subset' stochastic depth picks its rows,
            ``'index_select'`` (default) or ``'advanced'`` indexing; same values,
            the first with a cheaper backward (see :class:`Block`).
        linear_kernel (str): kernel of the block linears: 'auto' (default;
            oneDNN forward and input gradient for fp32 on CPU, aten elsewhere),
            'auto_forward' (oneDNN forward only) or 'aten' (see
            :mod:`~pera_mm.models.utils.onednn_linear`).
        attention_kernel (str): 'auto' (default; short key sequences in fp32 on
            CPU as explicit softmax attention, SDPA otherwise) or 'sdpa' (see
            :func:`~pera_mm.models.utils.attention.attend`).
        sparse_embed (bool): the sparse and student paths embed only the patches
            they keep: the patch convolution as one GEMM of those patches'
            pixels (on ``linear_kernel``) instead of a convolution over the whole
            grid followed by a gather. Same values. Defaults to True.
        pack_crops (bool): ``forward_student`` with local crops runs the
            global and the local sequences through each block together (one
            GEMM per linear on all their tokens, attention per sequence) instead
            of one path after the other; with ``compile`` they stay separate.
            Same values and gradients; stochastic depth still draws its rows
            sequence by sequence (in another order of the random stream).
            Defaults to True.
        prune_last_block (bool): in ``forward_sparse(cls_only=True)`` and
            ``forward_student`` the last block computes only the tokens that are
            returned (cls; cls + mask tokens), which still attend to every
            token. Same values and gradients. Defaults to True.
        mask_token_insert (str): how ``forward_student`` puts the visible
            tokens and the mask tokens into raster order: ``'scatter'``
            (default: each scattered to its slot of one new sequence; the
            backward is a gather) or ``'gather'`` (concatenate, then gather by
            the sort order; the backward scatters into zeros). Same values.
        frozen_stages (int): -1 (default) freezes nothing; ``n >= 0`` freezes
            the embedding (patch embedding, position embedding, cls token) and
            the first ``n`` blocks (and the final norm when ``n == num_layers``):
            ``requires_grad=False`` and eval mode (no drop path) for them, also
            after ``train()``. For linear probing.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)``
            loads the ViT weights from a PerA training checkpoint (teacher
            backbone), ``extract_backbone`` output (PerAViT or MMPretrain names,
            with or without a ``backbone.`` prefix) or the released PerA layout,
            and logs the missing/unexpected keys (see
            :func:`pera_mm.utils.backbone_checkpoint.load_vit_checkpoint`).
    """

    arch_zoo = {
        'tiny': dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        'small': dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
        'base': dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
        'large': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096),
        'giant-1024': dict(embed_dims=1024, num_layers=40, num_heads=16, feedforward_channels=4096),
    }
    OUT_TYPES = ('cls_token', 'featmap', 'avg_featmap', 'raw')

    def __init__(
        self,
        arch: Union[str, dict] = 'base',
        img_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        qkv_bias=True,
        drop_path_rate: float = 0.0,
        drop_path_mode: str = 'subset',
        layer_scale_init_value: float = 0.0,
        mask_token_layer: Optional[int] = None,
        interpolate_offset: float = 0.1,
        out_indices: Union[int, Sequence[int]] = -1,
        out_type: str = 'cls_token',
        final_norm: bool = True,
        with_cp: bool = False,
        compile: Union[bool, dict] = False,  # noqa: A002 (mmengine's name)
        frozen_stages: int = -1,
        num_register_tokens: int = 0,
        norm_eps: float = 1e-6,
        mlp_type: str = 'mlp',
        pos_embed_layout: str = 'cls_slot',
        pos_resize: str = 'offset',
        rope: Optional[dict] = None,
        mask_token_insert: str = 'scatter',
        subset_rows: str = 'index_select',
        prune_last_block: bool = True,
        linear_kernel: str = 'auto',
        attention_kernel: str = 'auto',
        sparse_embed: bool = True,
        pack_crops: bool = True,
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        if mask_token_insert not in MASK_TOKEN_INSERTS:
            raise PeraConfigError(
                f'PerAViT: mask_token_insert must be one of {MASK_TOKEN_INSERTS}, '
                f'got {mask_token_insert!r}'
            )
        self.mask_token_insert = mask_token_insert
        self.prune_last_block = prune_last_block
        self.sparse_embed = sparse_embed
        self.pack_crops = pack_crops
        self.linear_kernel = check_kernel(linear_kernel, 'PerAViT')
        self.arch_settings = self._parse_arch(arch)
        C = self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise PeraConfigError(
                f'PerAViT: img_size {img_size} is not divisible by patch_size {patch_size}'
            )
        if out_type not in self.OUT_TYPES:
            raise PeraConfigError(
                f'PerAViT: out_type must be one of {self.OUT_TYPES}, got {out_type!r}'
            )
        self.img_size, self.patch_size, self.in_channels = img_size, patch_size, in_channels
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.mask_token_layer = (
            self.num_layers // 2 if mask_token_layer is None else mask_token_layer
        )
        if not 0 <= self.mask_token_layer < self.num_layers:
            raise PeraConfigError(
                f'PerAViT: mask_token_layer must be in [0, {self.num_layers}), '
                f'got {self.mask_token_layer}'
            )
        self.interpolate_offset = interpolate_offset
        self._check_position_options(pos_embed_layout, pos_resize, rope, num_register_tokens)
        self.pos_embed_layout, self.pos_resize = pos_embed_layout, pos_resize
        self.num_register_tokens = num_register_tokens
        self.num_prefix_tokens = 1 + num_register_tokens
        self._num_pos_slots = 1 if pos_embed_layout == 'cls_slot' else 0
        self.out_type, self.final_norm, self.with_cp = out_type, final_norm, with_cp
        self._block_call = self._build_block_call(compile)
        out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        self.out_indices = [i % self.num_layers for i in out_indices]

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_channels, C, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, C)) if num_register_tokens else None
        )
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, self._num_pos_slots + num_patches, C))
            if pos_embed_layout != 'none'
            else None
        )
        num_heads = self.arch_settings['num_heads']
        self.rope = RotaryPositionEmbedding2D(C // num_heads, **rope) if rope is not None else None
        self.blocks = nn.ModuleList(
            [
                Block(
                    C,
                    self.arch_settings['num_heads'],
                    self.arch_settings['feedforward_channels'],
                    qkv_bias=qkv_bias,
                    drop_path=drop_path_rate,
                    drop_path_mode=drop_path_mode,
                    layer_scale_init_value=layer_scale_init_value,
                    norm_eps=norm_eps,
                    mlp_type=mlp_type,
                    subset_rows=subset_rows,
                    linear_kernel=linear_kernel,
                    attention_kernel=attention_kernel,
                )
                for _ in range(self.num_layers)
            ]
        )
        self.norm = nn.LayerNorm(C, eps=norm_eps)
        self.frozen_stages = check_frozen_stages(frozen_stages, self.num_layers, 'PerAViT')
        self._freeze_stages()

    @staticmethod
    def _check_position_options(layout, resize, rope, num_register_tokens):
        if layout not in POS_EMBED_LAYOUTS:
            raise PeraConfigError(
                f'PerAViT: pos_embed_layout must be one of {POS_EMBED_LAYOUTS}, got {layout!r}'
            )
        if resize not in POS_RESIZE_MODES:
            raise PeraConfigError(
                f'PerAViT: pos_resize must be one of {POS_RESIZE_MODES}, got {resize!r}'
            )
        if rope is not None and not isinstance(rope, dict):
            raise PeraConfigError(f'PerAViT: rope must be None or a dict, got {rope!r}')
        if layout == 'none' and rope is None:
            raise PeraConfigError(
                "PerAViT: pos_embed_layout='none' needs rope (the tokens would have no position)"
            )
        if not isinstance(num_register_tokens, int) or num_register_tokens < 0:
            raise PeraConfigError(
                f'PerAViT: num_register_tokens must be an int >= 0, got {num_register_tokens!r}'
            )

    @staticmethod
    def _build_block_call(compile_cfg):
        if compile_cfg is False or compile_cfg is None:
            return _call_block
        if compile_cfg is True:
            compile_cfg = {}
        if not isinstance(compile_cfg, dict):
            raise PeraConfigError(
                f'PerAViT: compile must be a bool or a dict of torch.compile '
                f'arguments, got {compile_cfg!r}'
            )
        return torch.compile(_call_block, **dict(dict(dynamic=True), **compile_cfg))

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise PeraConfigError(
                    f'PerAViT: unknown arch {arch!r}; expected one of '
                    f'{sorted(self.arch_zoo)} or a dict'
                )
            return dict(self.arch_zoo[arch])
        needed = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
        if not isinstance(arch, dict) or not needed <= set(arch):
            raise PeraConfigError(
                f'PerAViT: a custom arch must be a dict with keys {sorted(needed)}, got {arch!r}'
            )
        return dict(arch)

    def init_weights(self):
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained_init(self, PerAViT)
            return
        super().init_weights()
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        init_linear_and_norm_layers(self, partial(nn.init.trunc_normal_, std=0.02))
        w = self.patch_embed.proj.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)

    # ------------------------------------------------------------------ embedding
    def _resize_table(self, table, src_hw, dst_hw, offset):
        """``table`` resized from ``src_hw`` to ``dst_hw`` by this layout's convention."""
        antialias = self.pos_resize == 'antialias'
        return resize_pos_embed(
            table,
            src_hw,
            dst_hw,
            num_extra_tokens=self._num_pos_slots,
            offset=0.0 if antialias else offset,
            antialias=antialias,
        )

    def pos_embed_for(self, grid_hw):
        """The learned table (1, slots + h*w, C) for a patch grid of another size.

        ``slots`` is 1 for the 'cls_slot' layout and 0 for 'patch_only'.
        """
        return self._resize_table(self.pos_embed, self.grid_size, grid_hw, self.interpolate_offset)

    def embed(self, x, keep_idx=None):
        """Patch-embed and add positions.

        Args:
            x (Tensor): (N, C_in, H, W) images.
            keep_idx (Tensor, optional): (N, K) patches to return; None = all.

        Returns:
            tuple: prefix tokens (N, 1 + R, C) (cls, then the R register
            tokens), patch tokens (N, L or K, C) with their positions, and the
            position embeddings (1, L, C) of the whole grid (zeros without a
            learned table).
        """
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise PeraConfigError(
                f'PerAViT: input size {tuple(x.shape[-2:])} is not divisible by '
                f'patch_size {self.patch_size}'
            )
        grid = self._grid_of(x)
        gemm = (
            keep_idx is not None and self.sparse_embed and type(self.patch_embed.proj) is nn.Conv2d
        )
        if gemm:
            patches = self._embed_kept(x, keep_idx)
        else:
            patches = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token
        if self.pos_embed is None:
            pos = patches.new_zeros(1, grid[0] * grid[1], patches.shape[2])
        else:
            table = self.pos_embed_for(grid)
            pos = table[:, self._num_pos_slots :]
            if self._num_pos_slots:
                cls = cls + table[:, :1]
            patches = patches + (
                gather_tokens(pos.expand(x.shape[0], -1, -1), keep_idx) if gemm else pos
            )
        if keep_idx is not None and not gemm:
            patches = gather_tokens(patches, keep_idx)
        prefix = [cls]
        if self.register_tokens is not None:
            prefix.append(self.register_tokens)
        prefix = torch.cat(prefix, dim=1).expand(x.shape[0], -1, -1)
        return prefix, patches, pos

    def _embed_kept(self, x, keep_idx):
        """Tokens (N, K, C) of the patches ``keep_idx``: the patch convolution on them alone.

        A stride-``p`` ``p x p`` convolution is a linear map of each patch's
        (band, row, column) pixels; one indexing copy picks the kept patches'
        pixels in that order, so the kernel is used as it is stored.
        """
        N, c_in, H, W = x.shape
        p, gw = self.patch_size, W // self.patch_size
        grid = x.reshape(N, c_in, H // p, p, gw, p)
        rows = torch.arange(N, device=x.device).unsqueeze(1)
        pixels = grid[rows, :, keep_idx // gw, :, keep_idx % gw, :].flatten(2)
        proj = self.patch_embed.proj
        return linear(pixels, proj.weight.flatten(1), proj.bias, self.linear_kernel)

    def rope_coords(self, grid_hw, device=None):
        """RoPE coordinates (L, 2) of a patch grid, augmented in training; None without RoPE.

        One draw of the train-time augmentation per call: a path calls it once
        and gathers per-token coordinates from it.
        """
        if self.rope is None:
            return None
        return self.rope.augment(self.rope.grid_coords(grid_hw, device))

    def rope_for(self, coords):
        """Per-token ``(sin, cos)`` (N or 1, 1 + R + T, head_dim) of patch coordinates.

        ``coords``: (T, 2) or (N, T, 2) coordinates of the patch tokens in
        sequence order; the prefix (cls, registers) rows get no rotation.
        None if ``coords`` is None.
        """
        if coords is None:
            return None
        if coords.dim() == 2:
            coords = coords.unsqueeze(0)
        sin, cos = self.rope.sincos(coords)
        n, _, d = sin.shape
        p = self.num_prefix_tokens
        sin = torch.cat([sin.new_zeros(n, p, d), sin], dim=1)
        cos = torch.cat([cos.new_ones(n, p, d), cos], dim=1)
        return sin, cos

    @staticmethod
    def _gather_coords(coords, idx):
        """Coordinates (N, K, 2) of the patches ``idx`` (N, K); None without RoPE."""
        if coords is None:
            return None
        return gather_tokens(coords.unsqueeze(0).expand(idx.shape[0], -1, -1), idx)

    def _run_blocks(self, x, blocks, rope=None, queries=None):
        """Run ``blocks``; with ``queries`` (N, K) the last one computes those tokens only."""
        last = len(blocks) - 1
        for i, blk in enumerate(blocks):
            q = queries if i == last else None
            if self.with_cp and x.requires_grad:
                x = checkpoint(self._block_call, blk, x, rope, q, use_reentrant=False)
            else:
                x = self._block_call(blk, x, rope, q)
        return x

    def _run_block_groups(self, xs, blocks, ropes, queries=None):
        """``_run_blocks`` of several sequences at once (:meth:`Block.forward_groups`).

        Each block is called as a module, with lists, as FSDP needs of its units.
        """
        last = len(blocks) - 1
        for i, blk in enumerate(blocks):
            q = queries if i == last else None
            if self.with_cp and any(x.requires_grad for x in xs):
                xs = checkpoint(self._block_call, blk, xs, ropes, q, use_reentrant=False)
            else:
                xs = self._block_call(blk, xs, ropes, q)
        return xs

    def _drop_registers(self, x):
        """Cls + patch tokens of a (N, 1 + R + T, C) sequence."""
        if not self.num_register_tokens:
            return x
        return torch.cat([x[:, :1], x[:, self.num_prefix_tokens :]], dim=1)

    # ------------------------------------------------------------- training paths
    def forward_sparse(self, x, keep_idx=None, cls_only=False):
        """The sparse path: cls + the patches at ``keep_idx`` through every block.

        Returns the final-normed token sequence (N, 1 + K, C) (cls, then the
        kept patches; register tokens run along but are not returned), or with
        ``cls_only`` the final-normed cls token (N, C); ``keep_idx`` (N, K), or
        None to keep every patch.
        """
        h, rope = self._sparse_input(x, keep_idx)
        if cls_only:
            queries = self._cls_queries(h) if self.prune_last_block else None
            return self.norm(self._run_blocks(h, self.blocks, rope, queries)[:, 0])
        h = self._run_blocks(h, self.blocks, rope)
        return self._drop_registers(self.norm(h))

    def _sparse_input(self, x, keep_idx):
        """The embedded sequence of the sparse path (N, prefix + K, C) and its rotations."""
        grid = self._grid_of(x)
        if keep_idx is not None and keep_idx.shape[1] == grid[0] * grid[1]:
            keep_idx = None  # every patch: the full grid, in raster order
        prefix, patches, _ = self.embed(x, keep_idx)
        coords = self.rope_coords(grid, x.device)
        if keep_idx is not None:
            coords = self._gather_coords(coords, keep_idx)
        return torch.cat([prefix, patches], dim=1), self.rope_for(coords)

    @staticmethod
    def _cls_queries(h):
        """Index (N, 1) of the cls token in every row of ``h``."""
        return torch.zeros(h.shape[0], 1, dtype=torch.long, device=h.device)

    def forward_student(self, x, s_idx, l_idx, mask_token, local_x=None, local_idx=None):
        """The student path on global crops (with ``local_x``, also the local crops' cls).

        Args:
            x (Tensor): (N, 3, H, W) student views.
            s_idx (Tensor): (N, n_s) visible patch indices, ascending.
            l_idx (Tensor): (N, n_l) mask-token patch indices, ascending.
            mask_token (Tensor): (1, 1, C) learnable mask token.
            local_x (Tensor, optional): (M, 3, h, w) local views for the cls-only
                sparse path; with ``pack_crops`` they share the global crops'
                block calls.
            local_idx (Tensor, optional): (M, k) their kept patches (None: every patch).

        Returns:
            tuple: final-normed cls (N, C) and mask-token outputs (N, n_l, C) in
            the order of ``l_idx``; with ``local_x`` also the local cls (M, C).
        """
        if local_x is not None and not (self.pack_crops and self._block_call is _call_block):
            cls, l_out = self.forward_student(x, s_idx, l_idx, mask_token)  # first, as before
            return cls, l_out, self.forward_sparse(local_x, local_idx, cls_only=True)
        prefix, patches, pos = self.embed(x, s_idx)
        p = self.num_prefix_tokens
        n_s = s_idx.shape[1]
        coords = self.rope_coords(self._grid_of(x), x.device)
        h = torch.cat([prefix, patches], dim=1)
        rope = self.rope_for(self._gather_coords(coords, s_idx))
        h_loc, rope_loc = (
            (None, None) if local_x is None else self._sparse_input(local_x, local_idx)
        )
        early = self.blocks[: self.mask_token_layer]
        h, h_loc = self._run_student_blocks(h, h_loc, rope_loc, early, rope)
        # Raster order of s ∪ l: sorting the concatenated positions once gives the
        # slots in order and the permutation of [s outputs, mask tokens] into them.
        sl_sorted, order = torch.cat([s_idx, l_idx], dim=1).sort(dim=1)
        mask_tokens = mask_token.to(h.dtype) + gather_tokens(pos.expand(x.shape[0], -1, -1), l_idx)
        rank = order.argsort(dim=1) + p  # slot of each of [s, l] after cls and registers
        h = self.insert_mask_tokens(h, mask_tokens, order, rank)
        # the late tokens sit at the slots sl_sorted: their coordinates
        rope = self.rope_for(self._gather_coords(coords, sl_sorted))
        late = self.blocks[self.mask_token_layer :]
        out = None
        if self.prune_last_block:  # the last block computes cls and the mask tokens only
            out = torch.cat([self._cls_queries(h), rank[:, n_s:]], dim=1)
        h, h_loc = self._run_student_blocks(h, h_loc, rope_loc, late, rope, out)
        h = self.norm(h)
        l_out = h[:, 1:] if self.prune_last_block else gather_tokens(h, rank[:, n_s:])
        if h_loc is None:
            return h[:, 0], l_out
        return h[:, 0], l_out, self.norm(h_loc[:, 0])

    def _run_student_blocks(self, h, h_loc, rope_loc, blocks, rope, queries=None):
        """``blocks`` on the global sequence ``h``, packed with the local ``h_loc`` if given.

        Without ``h_loc``: ``h`` alone. The local sequence's last block computes its cls
        only where ``queries`` prune the global one.
        """
        if h_loc is None:
            return self._run_blocks(h, blocks, rope, queries), None
        if queries is not None:
            queries = [queries, self._cls_queries(h_loc)]
        h, h_loc = self._run_block_groups([h, h_loc], blocks, [rope, rope_loc], queries)
        return h, h_loc

    def insert_mask_tokens(self, h, mask_tokens, order, rank):
        """``[prefix, s tokens]`` (N, p + n_s, C) and mask tokens (N, n_l, C) in raster order.

        ``order`` (N, n_s + n_l) sorts the positions ``[s_idx, l_idx]``; ``rank``
        is its inverse plus ``p``: the slot of each of them after the prefix.
        """
        p = self.num_prefix_tokens
        if self.mask_token_insert == 'scatter':
            # [prefix, s outputs, mask tokens] scattered to their slots in one pass
            src = torch.cat([h, mask_tokens], dim=1)
            prefix_slots = torch.arange(p, device=rank.device).expand(rank.shape[0], -1)
            slots = torch.cat([prefix_slots, rank], dim=1)
            return torch.empty_like(src).scatter(1, _expand_idx(slots, src), src)
        body = gather_tokens(torch.cat([h[:, p:], mask_tokens], dim=1), order)
        return torch.cat([h[:, :p], body], dim=1)

    def forward_masked_dense(self, x, l_mask, mask_token):
        """The full-grid student path of the iBOT / DINOv2-style baseline.

        Patches where ``l_mask`` (N, L) is True are replaced by the mask token
        (+ their position) before block ``mask_token_layer``. Returns the
        final-normed sequence (N, 1 + L, C) (cls and patches).
        """
        prefix, patches, pos = self.embed(x)
        p = self.num_prefix_tokens
        rope = self.rope_for(self.rope_coords(self._grid_of(x), x.device))
        h = torch.cat([prefix, patches], dim=1)
        h = self._run_blocks(h, self.blocks[: self.mask_token_layer], rope)
        tokens = mask_token.to(h.dtype) + pos
        body = torch.where(l_mask.unsqueeze(-1), tokens, h[:, p:])
        h = torch.cat([h[:, :p], body], dim=1)
        h = self.norm(self._run_blocks(h, self.blocks[self.mask_token_layer :], rope))
        return self._drop_registers(h)

    def _grid_of(self, x):
        return (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)

    # ------------------------------------------------------------ dense downstream
    def forward(self, x, path: str = 'dense', **kwargs):
        """Run one path: ``'dense'`` (default) or a training path.

        ``'dense'``: every patch, outputs of ``out_indices`` like MMPretrain's
        ViT. ``'sparse'``, ``'student'``, ``'masked_dense'`` run
        ``forward_<path>(x, **kwargs)``. Training code calls the paths through
        ``forward`` because FSDP gathers a unit's parameters only there.
        """
        if path == 'dense':
            return self.forward_dense(x)
        if path not in ('sparse', 'student', 'masked_dense'):
            raise PeraConfigError(
                f"PerAViT: path must be 'dense', 'sparse', 'student' or "
                f"'masked_dense', got {path!r}"
            )
        return getattr(self, f'forward_{path}')(x, **kwargs)

    def forward_dense(self, x):
        """Every patch through every block; outputs of ``out_indices``."""
        B = x.shape[0]
        prefix, patches, _ = self.embed(x)
        grid = self._grid_of(x)
        rope = self.rope_for(self.rope_coords(grid, x.device))
        h = torch.cat([prefix, patches], dim=1)
        outs = []
        for i, blk in enumerate(self.blocks):
            h = self._run_blocks(h, [blk], rope)
            out = h
            if i == self.num_layers - 1 and self.final_norm:
                out = h = self.norm(h)
            if i in self.out_indices:
                outs.append(self._format_output(out, grid, B))
        return tuple(outs)

    def forward_features(self, x):
        """Final-normed cls (N, C), register (N, R, C) and patch (N, L, C) tokens."""
        prefix, patches, _ = self.embed(x)
        rope = self.rope_for(self.rope_coords(self._grid_of(x), x.device))
        h = self.norm(self._run_blocks(torch.cat([prefix, patches], dim=1), self.blocks, rope))
        p = self.num_prefix_tokens
        return h[:, 0], h[:, 1:p], h[:, p:]

    def _format_output(self, x, grid, B):
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, self.num_prefix_tokens :]
        if self.out_type == 'featmap':
            return patches.reshape(B, grid[0], grid[1], -1).permute(0, 3, 1, 2).contiguous()
        return patches.mean(dim=1)

    # ------------------------------------------------- fine-tuning: lr decay, freezing
    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Depth of a parameter for layer-wise lr decay.

        The rule: ``patch_embed``, ``pos_embed`` and ``cls_token`` have depth 0,
        ``blocks.i.*`` depth ``i + 1``, anything else (the final ``norm``, and a
        name without ``prefix``) depth ``num_layers + 1``.

        Args:
            param_name (str): parameter name, e.g. ``'backbone.blocks.3.attn.qkv.weight'``.
            prefix (str): the backbone's prefix in ``param_name``, e.g. ``'backbone.'``.

        Returns:
            tuple[int, int]: the depth and the number of depths (``num_layers + 2``).
        """
        return vit_layer_depth(param_name, prefix, self.num_layers)

    def _freeze_stages(self):
        for module in frozen_modules(self, self.frozen_stages, with_cls_norm=True):
            module.eval()
            for param in module.parameters(recurse=True):
                param.requires_grad = False
        if self.frozen_stages >= 0:
            for param in (self.cls_token, self.pos_embed, self.register_tokens):
                if param is not None:
                    param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the train mode; frozen stages stay in eval mode."""
        super().train(mode)
        if mode and getattr(self, 'frozen_stages', -1) >= 0:
            for module in frozen_modules(self, self.frozen_stages, with_cls_norm=True):
                module.eval()
        return self

    # --------------------------------------------------------------- checkpoints
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Resize a checkpoint's position embedding to this model's grid."""
        key = prefix + 'pos_embed'
        if (
            self.pos_embed is not None
            and key in state_dict
            and state_dict[key].shape != self.pos_embed.shape
        ):
            src = state_dict[key]
            src_grid = infer_square_grid(src.shape[1] - self._num_pos_slots)
            state_dict[key] = self._resize_table(src, src_grid, self.grid_size, offset=0.0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
