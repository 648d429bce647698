# Copyright (c) pera-mm contributors. All rights reserved.
"""Export a PerA encoder to timm's local folder format.

``timm.create_model('local-dir:DIR', pretrained=True)`` reads ``DIR/config.json``
(the architecture name, ``model_args`` that rebuild the network and a
``pretrained_cfg`` with the input size and normalisation) and the weights in
``DIR/model.safetensors``. PerAViT and timm's ``VisionTransformer`` share
parameter names (``patch_embed.proj``, ``blocks.i.{norm1,attn.qkv,attn.proj,
ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``), the LayerNorm eps
(1e-6), exact GELU, the cls token and a position table that covers it, so the
weights are written unchanged.

Position embeddings at another input size: PerAViT resizes its table at run
time bicubically with ``scale_factor = (new + interpolate_offset) / old`` (the
DINOv2 / released-PerA convention, PyTorch's cubic kernel a = -0.75); timm's
``dynamic_img_size=True`` resizes to the size with ``antialias=True`` (Pillow's
kernel a = -0.5). The two tables differ, so ``img_size`` writes a table that is
already resized our way and timm needs no resize at that size.
"""

import ast
import json
import os
import os.path as osp
import struct
from collections import OrderedDict
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch

from .checkpoint_convert import (
    CheckpointConvertError,
    infer_vit_arch,
    is_vit_key,
    mmpretrain_to_pera_vit_key,
)
from .errors import PeraConfigError, PeraDataError

TIMM_CONFIG_NAME = 'config.json'
TIMM_WEIGHTS_NAME = 'model.safetensors'
#: how ``img_size`` resizes the position table: like PerAViT at run time on an
#: input of that size, or like a PerAViT built at that size loading the weights
POS_RESIZE_MODES = ('runtime', 'load')
#: the normalisation of every shipped PerA config (0-255 pixel units)
DEFAULT_MEAN = (123.675, 116.28, 103.53)
DEFAULT_STD = (58.395, 57.12, 57.375)
#: LayerScale init used when the checkpoint does not say (DINOv2's); timm only
#: needs a value to create the ``ls*.gamma`` parameters, the weights replace it
DEFAULT_LAYER_SCALE_INIT = 1e-5

# timm registry names of the standard shapes (embed_dim, depth, heads); any other
# shape (e.g. the slim ViT-G/16-1024) builds from the closest name with every
# architecture argument given explicitly in ``model_args``.
_TIMM_NAMES = {
    (192, 12, 3): 'vit_tiny',
    (384, 12, 6): 'vit_small',
    (768, 12, 12): 'vit_base',
    (1024, 24, 16): 'vit_large',
}
_TRAINING_PREFIXES = (
    'student.',
    'teacher.',
    'projector.',
    'predictor.',
    'pred_head.',
    'cls_loss.',
    'dino_loss.',
)
_SAFETENSORS_DTYPES = {
    torch.float64: 'F64',
    torch.float32: 'F32',
    torch.float16: 'F16',
    torch.bfloat16: 'BF16',
    torch.int64: 'I64',
    torch.int32: 'I32',
    torch.int16: 'I16',
    torch.int8: 'I8',
    torch.uint8: 'U8',
    torch.bool: 'BOOL',
}


# --------------------------------------------------------------- config text
def _literal(node):
    """A config value built from literals and ``dict(...)`` calls only."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == 'dict'
        and not node.args
        and all(kw.arg is not None for kw in node.keywords)
    ):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(type(node).__name__)


def parse_config_text(text: str) -> dict:
    """The top-level assignments of a config's ``pretty_text`` (as MMEngine
    stores it in a checkpoint's ``meta['cfg']``), read without executing it.

    Assignments whose value is not made of literals and ``dict(...)`` are left
    out; text that does not parse gives ``{}``.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = _literal(stmt.value)
                except ValueError:
                    continue
    return out


def training_settings(meta) -> dict:
    """What a checkpoint's ``meta`` tells about its encoder.

    Reads ``meta['cfg']`` (MMEngine training checkpoints) or
    ``meta['backbone_cfg']`` / ``meta['mean']`` / ``meta['std']``
    (``extract_backbone`` output).

    Returns:
        dict: ``backbone`` (the backbone config dict, possibly empty) and
        ``mean`` / ``std`` (0-255 units) when known.
    """
    meta = meta if isinstance(meta, dict) else {}
    out = {'backbone': {}}
    if isinstance(meta.get('backbone_cfg'), dict):
        out['backbone'] = dict(meta['backbone_cfg'])
    for key in ('mean', 'std'):
        if isinstance(meta.get(key), (list, tuple)):
            out[key] = [float(v) for v in meta[key]]
    if isinstance(meta.get('cfg'), str):
        cfg = parse_config_text(meta['cfg'])
        model = cfg.get('model') if isinstance(cfg.get('model'), dict) else {}
        if isinstance(model.get('backbone'), dict):
            out['backbone'] = dict(model['backbone'])
        for pre in (model.get('data_preprocessor'), cfg.get('data_preprocessor')):
            if isinstance(pre, dict) and 'mean' in pre and 'std' in pre and 'mean' not in out:
                out['mean'] = [float(v) for v in pre['mean']]
                out['std'] = [float(v) for v in pre['std']]
    return out


# --------------------------------------------------------------- the encoder
def _mmpretrain_targets(state_dict: Dict[str, torch.Tensor]) -> list:
    keys = []
    for key in state_dict:
        for prefix in ('', 'backbone.'):
            if key.startswith(prefix):
                sub = key[len(prefix) :]
                ours = sub if is_vit_key(sub) else mmpretrain_to_pera_vit_key(sub)
                if ours is not None:
                    keys.append(ours)
    return sorted(set(keys))


def find_encoder(
    state_dict: Dict[str, torch.Tensor], part: str = 'teacher', source: str = '<checkpoint>'
) -> 'OrderedDict':
    """The PerAViT-named encoder weights inside a flat checkpoint.

    Accepts our PerA training checkpoint, the released PerA layout (full or
    teacher-only) and ``extract_backbone`` output (PerAViT or MMPretrain names,
    with or without ``backbone.``). Only references are taken: tensors of a
    memory-mapped file stay unread.

    Raises:
        CheckpointConvertError: a training checkpoint without the asked part
            (e.g. no teacher weights), or no ViT weights at all.
    """
    from .backbone_checkpoint import find_vit_weights

    training = any(k.startswith(_TRAINING_PREFIXES) for k in state_dict) or any(
        k in ('mask_token', 's_mask_token') for k in state_dict
    )
    if training and part == 'teacher' and not any(k.startswith('teacher.') for k in state_dict):
        raise CheckpointConvertError(
            f"{source} has no teacher weights (no 'teacher.*' keys); "
            'export the student with --student'
        )
    try:
        vit, _ = find_vit_weights(state_dict, _mmpretrain_targets(state_dict), part, source)
    except PeraDataError as e:
        raise CheckpointConvertError(str(e)) from None
    return vit


def _settings_value(name, given, settings, default):
    if given is not None:
        return given
    value = settings.get('backbone', {}).get(name)
    return default if value is None else value


def _num_heads(vit_arch: dict, given: Optional[int], settings: dict, source: str) -> int:
    from ..models.backbones.pera_vit import PerAViT

    if given is not None:
        heads = int(given)
    else:
        arch = settings.get('backbone', {}).get('arch')
        heads = None
        if isinstance(arch, str) and arch in PerAViT.arch_zoo:
            heads = PerAViT.arch_zoo[arch]['num_heads']
        elif isinstance(arch, dict) and 'num_heads' in arch:
            heads = int(arch['num_heads'])
        if heads is None:
            shape = tuple(vit_arch[k] for k in ('embed_dims', 'num_layers', 'feedforward_channels'))
            matches = [
                a['num_heads']
                for a in PerAViT.arch_zoo.values()
                if (a['embed_dims'], a['num_layers'], a['feedforward_channels']) == shape
            ]
            if not matches:
                raise PeraConfigError(
                    f'{source}: cannot tell the number of attention heads of a '
                    f'{shape[0]}-wide, {shape[1]}-block ViT (not a PerAViT arch and the '
                    'checkpoint has no config); pass --num-heads'
                )
            heads = matches[0]
    if heads <= 0 or vit_arch['embed_dims'] % heads:
        raise PeraConfigError(
            f'{source}: num_heads {heads} does not divide the width {vit_arch["embed_dims"]}'
        )
    return heads


def _grid(vit_arch: dict, settings: dict, source: str) -> Tuple[int, int]:
    from ..models.utils import infer_square_grid

    patch, n = vit_arch['patch_size'], vit_arch['num_patches']
    size = settings.get('backbone', {}).get('img_size')
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        grid = (size[0] // patch, size[1] // patch)
        if grid[0] * grid[1] == n:
            return grid
    try:
        return infer_square_grid(n)
    except ValueError:
        raise PeraDataError(
            f'{source}: {n} position embeddings are no square grid and the checkpoint '
            'names no img_size'
        ) from None


def _image_size(value) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def resize_position_table(
    pos_embed: torch.Tensor,
    grid: Sequence[int],
    new_grid: Sequence[int],
    mode: str = 'runtime',
    interpolate_offset: float = 0.1,
) -> torch.Tensor:
    """Our position-table resize (see the module docstring).

    Args:
        pos_embed (Tensor): (1, 1 + h*w, C) table of ``grid``.
        grid, new_grid: the source and target patch grids.
        mode (str): 'runtime' (what PerAViT does to an input of the new size,
            with ``interpolate_offset``) or 'load' (what a PerAViT built at the
            new size does when it loads the checkpoint: plain bicubic to the size).
        interpolate_offset (float): PerAViT's run-time resize offset.
    """
    from ..models.utils import resize_pos_embed

    if mode not in POS_RESIZE_MODES:
        raise PeraConfigError(f'pos_resize must be one of {POS_RESIZE_MODES}, got {mode!r}')
    offset = interpolate_offset if mode == 'runtime' else 0.0
    return resize_pos_embed(pos_embed, tuple(grid), tuple(new_grid), offset=offset).contiguous()


def timm_architecture(embed_dim: int, depth: int, num_heads: int, patch_size: int) -> str:
    """The timm registry name whose entry point builds the exported model.

    The name only selects timm's ViT entry point: ``model_args`` overrides
    every architecture argument, so a shape without a registry name (the slim
    ViT-G/16-1024: 1024 wide, 40 blocks) builds from the closest one.
    """
    import timm

    base = _TIMM_NAMES.get((embed_dim, depth, num_heads))
    if base is None:
        by_width = {k[0]: v for k, v in _TIMM_NAMES.items()}
        base = by_width.get(embed_dim, 'vit_base')
    for name in (f'{base}_patch{patch_size}_224', f'{base}_patch16_224'):
        if timm.is_model(name):
            return name
    return 'vit_base_patch16_224'


def timm_config(
    vit_arch: dict,
    num_heads: int,
    img_size: Tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    init_values: Optional[float],
    description: str = '',
) -> dict:
    """timm's ``config.json`` for a PerAViT encoder.

    Args:
        vit_arch (dict): :func:`~pera_mm.utils.checkpoint_convert.infer_vit_arch` output.
        num_heads (int): attention heads.
        img_size (tuple): the input size the position table is for.
        mean, std: normalisation in 0-255 pixel units (written in timm's 0-1 units).
        init_values (float, optional): LayerScale init; None without LayerScale.
        description (str): free text for ``pretrained_cfg``.
    """
    C, depth, ffn = vit_arch['embed_dims'], vit_arch['num_layers'], vit_arch['feedforward_channels']
    mlp_ratio = ffn / C
    if int(C * mlp_ratio) != ffn:
        raise PeraDataError(f'MLP width {ffn} is not int({C} * mlp_ratio) for any float ratio')
    if len(mean) != vit_arch['in_channels'] or len(std) != vit_arch['in_channels']:
        raise PeraConfigError(
            f'mean/std need {vit_arch["in_channels"]} values (one per input band), '
            f'got {len(mean)} and {len(std)}'
        )
    size = img_size[0] if img_size[0] == img_size[1] else list(img_size)
    model_args = dict(
        img_size=size,
        patch_size=vit_arch['patch_size'],
        in_chans=vit_arch['in_channels'],
        embed_dim=C,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=vit_arch['qkv_bias'],
        init_values=init_values,
        class_token=True,
        no_embed_class=False,
        reg_tokens=0,
        pre_norm=False,
        final_norm=True,
        fc_norm=False,
        norm_layer='layernorm',
        global_pool='token',
        num_classes=0,
    )
    pretrained_cfg = dict(
        tag='pera',
        custom_load=False,
        input_size=[vit_arch['in_channels'], img_size[0], img_size[1]],
        fixed_input_size=True,
        interpolation='bicubic',
        crop_pct=1.0,
        crop_mode='center',
        mean=[round(m / 255.0, 6) for m in mean],
        std=[round(s / 255.0, 6) for s in std],
        num_classes=0,
        first_conv='patch_embed.proj',
        classifier='head',
        description=description
        or 'PerA teacher encoder (LayerNorm eps 1e-6, exact GELU, cls token, '
        'final norm), exported by pera_mm',
    )
    return dict(
        architecture=timm_architecture(C, depth, num_heads, vit_arch['patch_size']),
        num_classes=0,
        num_features=C,
        global_pool='token',
        model_args=model_args,
        pretrained_cfg=pretrained_cfg,
    )


# --------------------------------------------------------------- safetensors
def write_safetensors(
    tensors: Dict[str, torch.Tensor],
    path: str,
    metadata: Optional[Dict[str, str]] = None,
    progress: bool = False,
) -> int:
    """Write ``tensors`` in the safetensors format, one tensor at a time.

    The format is an 8-byte little-endian header length, a JSON header
    (``{name: {dtype, shape, data_offsets}}`` plus ``__metadata__``) padded with
    spaces to 8 bytes, then the raw little-endian bytes back to back. Writing
    each tensor straight from its memory keeps the peak at one tensor's copy
    at most (none for contiguous tensors), where ``safetensors.torch.save_file``
    first builds the whole byte string.

    Returns:
        int: bytes of tensor data written.
    """
    header, offset, items = {}, 0, []
    for name, tensor in tensors.items():
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise PeraDataError(f'{name}: dtype {tensor.dtype} has no safetensors equivalent')
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = dict(
            dtype=_SAFETENSORS_DTYPES[tensor.dtype],
            shape=list(tensor.shape),
            data_offsets=[offset, offset + nbytes],
        )
        items.append((name, tensor))
        offset += nbytes
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(',', ':')).encode('utf-8')
    blob += b' ' * (-(len(blob) + 8) % 8)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=offset, unit='B', unit_scale=True, desc=f'write {osp.basename(path)}')
    try:
        with open(path, 'wb') as f:
            f.write(struct.pack('<Q', len(blob)))
            f.write(blob)
            for _, tensor in items:
                flat = tensor.detach().contiguous().reshape(-1)
                if flat.numel():
                    f.write(flat.view(torch.uint8).numpy())
                if bar is not None:
                    bar.update(flat.numel() * flat.element_size())
    finally:
        if bar is not None:
            bar.close()
    return offset


# --------------------------------------------------------------- the export
def prepare_timm_export(
    vit: Dict[str, torch.Tensor],
    settings: Optional[dict] = None,
    num_heads: Optional[int] = None,
    layer_scale_init: Optional[float] = None,
    mean: Optional[Iterable[float]] = None,
    std: Optional[Iterable[float]] = None,
    img_size=None,
    pos_resize: str = 'runtime',
    source: str = '<checkpoint>',
) -> Tuple[dict, 'OrderedDict']:
    """timm's ``config.json`` content and the weights to write, without writing.

    Args:
        vit (dict): PerAViT-named encoder weights (:func:`find_encoder`).
        settings (dict, optional): :func:`training_settings` of the checkpoint;
            fills what the arguments leave out (heads, LayerScale init, position
            resize offset, mean/std, a non-square img_size).
        num_heads (int, optional): attention heads (not readable from shapes).
        layer_scale_init (float, optional): timm ``init_values`` when the encoder
            has LayerScale (only its presence matters once weights are loaded).
        mean, std: normalisation in 0-255 pixel units; default the checkpoint's,
            else the shipped configs' (ImageNet statistics).
        img_size (int | tuple, optional): write the position table resized to
            this input size (our resize, ``pos_resize``); default the
            pretraining size (the table as it is).
        pos_resize (str): 'runtime' or 'load' (:func:`resize_position_table`).
        source (str): file name for error messages.

    Returns:
        tuple: the config dict and the weights (the same tensors as ``vit``,
        except a resized ``pos_embed``).
    """
    settings = settings or {'backbone': {}}
    unknown = [k for k in vit if not is_vit_key(k)]
    if unknown:
        raise CheckpointConvertError(f'{source}: {unknown[:3]} are not PerAViT parameters')
    # registers, separate q/v biases and SwiGLU (public-weight options) have no timm export yet
    options = [k for k in vit if k == 'register_tokens' or '_bias' in k or '.fc1_' in k]
    if options:
        raise CheckpointConvertError(
            f'{source}: {options[0]} belongs to a PerAViT option (registers, q/v bias or SwiGLU) '
            'that the timm export does not cover; export backbones with the default layout'
        )
    arch = infer_vit_arch(vit)
    heads = _num_heads(arch, num_heads, settings, source)
    grid = _grid(arch, settings, source)
    patch = arch['patch_size']
    weights = OrderedDict(vit)
    size = (grid[0] * patch, grid[1] * patch)
    if img_size is not None:
        size = _image_size(img_size)
        if size[0] % patch or size[1] % patch:
            raise PeraConfigError(f'img_size {size} is not divisible by the patch size {patch}')
        offset = float(_settings_value('interpolate_offset', None, settings, 0.1))
        weights['pos_embed'] = resize_position_table(
            vit['pos_embed'], grid, (size[0] // patch, size[1] // patch), pos_resize, offset
        )
    init_values = None
    if arch['layer_scale']:
        init_values = float(
            _settings_value(
                'layer_scale_init_value', layer_scale_init, settings, DEFAULT_LAYER_SCALE_INIT
            )
        )
        if init_values <= 0:
            init_values = DEFAULT_LAYER_SCALE_INIT
    mean = list(mean) if mean is not None else settings.get('mean', list(DEFAULT_MEAN))
    std = list(std) if std is not None else settings.get('std', list(DEFAULT_STD))
    return timm_config(arch, heads, size, mean, std, init_values), weights


def export_timm(vit: Dict[str, torch.Tensor], out_dir: str, progress: bool = False, **kwargs):
    """Write ``out_dir/config.json`` and ``out_dir/model.safetensors``.

    Args:
        vit (dict): PerAViT-named encoder weights (:func:`find_encoder`).
        out_dir (str): the folder for ``timm.create_model('local-dir:' + out_dir)``.
        progress (bool): tqdm bar over the bytes written.
        **kwargs: see :func:`prepare_timm_export`.

    Returns:
        dict: the config written.
    """
    config, weights = prepare_timm_export(vit, **kwargs)
    os.makedirs(out_dir, exist_ok=True)
    metadata = dict(format='pt', source='pera_mm')
    if kwargs.get('img_size') is not None:
        metadata['pos_resize'] = kwargs.get('pos_resize', 'runtime')
    write_safetensors(
        weights, osp.join(out_dir, TIMM_WEIGHTS_NAME), metadata=metadata, progress=progress
    )
    with open(osp.join(out_dir, TIMM_CONFIG_NAME), 'w') as f:
        json.dump(config, f, indent=2)
    return config
