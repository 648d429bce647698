"""Key mappings between PerA weight layouts (used by tools/model_converters).

Three layouts meet here:

- the authors' released PerA code: ``student.backbone.*``,
  ``teacher.backbone.*``, ``{student,teacher}.cls_head.*``, ``pred_head.*``,
  ``s_mask_token`` (DINOv2-style: blocks may be chunked as
  ``blocks.{chunk}.{i}.*``; teacher-only exports hold ``backbone.*`` and
  ``dino_head.*``);
- ours (:class:`pera_mm.models.PerA`): ``backbone.*``, ``projector.*``,
  ``predictor.*``, ``mask_token``, ``teacher.{backbone,projector}.*``,
  ``cls_loss.center``; backbone keys as :class:`PerAViT`;
- MMPretrain's ``VisionTransformer`` (``patch_embed.projection``,
  ``layers.{i}.ln1`` ...), for downstream use without pera_mm's backbone.

All functions are pure (dict in, dict out) so they are testable without
files. Failures raise :class:`CheckpointConvertError` with a one-line message.

Reading is memory-bounded: :func:`load_weights_file` with ``mmap=True`` maps
the file instead of reading it, so a tensor costs RAM only once its bytes are
touched (by writing it out); :func:`select_kept` picks what a conversion keeps
before anything is touched.
"""

import os
import os.path as osp
import re
import warnings
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, Iterable, Optional, Tuple

import torch

from .errors import PeraDataError

# Our PerAViT parameter names (after flattening chunked blocks).
_VIT_KEY = re.compile(
    r'^(?:cls_token|pos_embed'
    r'|patch_embed\.proj\.(?:weight|bias)'
    r'|norm\.(?:weight|bias)'
    r'|blocks\.\d+\.(?:norm[12]\.(?:weight|bias)'
    r'|attn\.(?:qkv|proj)\.(?:weight|bias)'
    r'|mlp\.fc[12]\.(?:weight|bias)|ls[12]\.gamma))$'
)
# PerAViT options for public weights (registers, q/v biases, SwiGLU); the PerA
# layouts never hold them, so their converters keep to ``_VIT_KEY``
_VIT_OPTION_KEY = re.compile(
    r'^(?:register_tokens|blocks\.\d+\.(?:attn\.[qv]_bias|mlp\.fc1_[gx]\.(?:weight|bias)))$'
)


def is_vit_key(key: str) -> bool:
    """Whether ``key`` is a ``PerAViT`` parameter name.

    Args:
        key (str): a state-dict key without prefix.
    """
    return bool(_VIT_KEY.match(key) or _VIT_OPTION_KEY.match(key))


# DINO head / pixel head parameter names (ours and the released code's).
_HEAD_KEY = re.compile(r'^(?:mlp\.\d+\.(?:weight|bias)|last_layer\.weight_[gv])$')
_CHUNKED_BLOCK = re.compile(r'^blocks\.(\d+)\.(\d+)\.(.+)$')
# torch.nn.utils.parametrizations.weight_norm names -> classic weight_norm.
_PARAMETRIZED_WN = {
    'parametrizations.weight.original0': 'weight_g',
    'parametrizations.weight.original1': 'weight_v',
}
# PerAViT module -> mmpretrain VisionTransformer module (per block / global);
# LayerScale's ``gamma`` is called ``weight`` there.
_VIT_TO_MMPRETRAIN_BLOCK = {
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'ls1': 'attn.gamma1',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
    'ls2': 'ffn.gamma2',
}
_VIT_TO_MMPRETRAIN_GLOBAL = {'patch_embed.proj': 'patch_embed.projection', 'norm': 'ln1'}
BACKBONE_FORMATS = ('pera', 'mmpretrain')
#: what ``pera_official_to_mm --keep`` can keep of a converted checkpoint
KEEP_CHOICES = ('all', 'teacher', 'teacher-backbone')
_KEEP_PREFIXES = {'teacher': ('teacher.',), 'teacher-backbone': ('teacher.backbone.',)}


class CheckpointConvertError(PeraDataError):
    """A checkpoint does not have the layout a conversion expects."""


def _short_list(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    more = f', ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return f'{len(keys)} key(s): {shown}{more}'


def load_weights_file(path: str, mmap: bool = False) -> dict:
    """``torch.load`` on CPU with ``weights_only=True``; one-line errors.

    Args:
        path (str): the checkpoint file.
        mmap (bool): map the file instead of reading it (``torch.load(...,
            mmap=True)``): tensors are views of the file and cost RAM only when
            their bytes are read. Files in torch's legacy (non-zip) format
            cannot be mapped; they are read whole, with a warning.
    """
    if not osp.isfile(path):
        raise CheckpointConvertError(f'{path}: no such file')
    if mmap and not zipfile.is_zipfile(path):
        warnings.warn(
            f'{path} is not in the torch zip format and cannot be memory-mapped; reading it whole',
            stacklevel=2,
        )
        mmap = False
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001  (any unpickling failure)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        # torch's weights-only message puts the cause on its own line
        reason = next(
            (ln for ln in lines if 'WeightsUnpickler error' in ln), lines[0] if lines else ''
        )
        raise CheckpointConvertError(
            f'{path}: cannot be read as a weights-only torch checkpoint '
            f'({type(e).__name__}: {reason})'
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointConvertError(
            f'{path}: expected a dict checkpoint, got {type(obj).__name__}'
        )
    return obj


class _ProgressWriter:
    """A binary file whose ``write`` advances a tqdm bar by the bytes written."""

    def __init__(self, file, bar):
        self._file, self._bar = file, bar

    def write(self, data) -> int:
        written = self._file.write(data)
        # the total counts tensor bytes; pickle and zip records are not in it
        self._bar.update(min(memoryview(data).nbytes, self._bar.total - self._bar.n))
        return written

    def flush(self):
        self._file.flush()


def own_storage(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` itself when it spans its whole storage, else a compact copy.

    ``torch.save`` writes a tensor's entire storage: a small view into a big
    shared buffer would drag the whole buffer into the output (and into RAM).
    """
    if tensor.is_contiguous() and tensor.untyped_storage().nbytes() == tensor.nbytes:
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


def save_weights_file(
    state_dict: Dict[str, torch.Tensor], path: str, meta: dict, progress: bool = False
) -> None:
    """Write ``{'state_dict', 'meta'}`` (tensors and plain types only, so it
    loads with ``weights_only=True`` and MMEngine's ``load_checkpoint``).

    Args:
        state_dict (dict): the tensors; views are compacted (:func:`own_storage`).
        path (str): output file; its folder is created.
        meta (dict): plain-typed information stored next to the weights.
        progress (bool): show a tqdm bar over the bytes written.
    """
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    weights = OrderedDict((k, own_storage(v)) for k, v in state_dict.items())
    obj = {'state_dict': weights, 'meta': dict(meta)}
    if not progress:
        torch.save(obj, path)
        return
    from tqdm import tqdm

    total = sum(v.nbytes for v in weights.values())
    with open(path, 'wb') as f, tqdm(
        total=total, unit='B', unit_scale=True, desc=f'write {osp.basename(path)}'
    ) as bar:
        torch.save(obj, _ProgressWriter(f, bar))


def select_kept(
    state_dict: Dict[str, torch.Tensor], keep: str = 'all', source: str = '<checkpoint>'
) -> 'OrderedDict':
    """The part of our PerA state dict a conversion keeps.

    Args:
        state_dict (dict): our PerA layout (see :func:`convert_official_to_pera`).
        keep (str): 'all' (everything), 'teacher' (``teacher.*``: the teacher
            backbone and projector) or 'teacher-backbone' (``teacher.backbone.*``).
        source (str): file name for error messages.

    Raises:
        CheckpointConvertError: unknown ``keep``, or nothing of it in the weights.
    """
    if keep not in KEEP_CHOICES:
        raise CheckpointConvertError(
            f'--keep must be one of {", ".join(KEEP_CHOICES)}; got {keep!r}'
        )
    if keep == 'all':
        return OrderedDict(state_dict)
    prefixes = _KEEP_PREFIXES[keep]
    kept = OrderedDict((k, v) for k, v in state_dict.items() if k.startswith(prefixes))
    if not kept:
        raise CheckpointConvertError(
            f"{source} has no teacher weights ('{prefixes[0]}*'); --keep {keep} needs them"
        )
    return kept


def _strip_module(key: str) -> str:
    while key.startswith('module.'):
        key = key[len('module.') :]
    return key


def _tensors(mapping: dict, prefix: str, source: str) -> 'OrderedDict':
    """Flatten one level of weights, dropping DDP ``module.`` prefixes."""
    out = OrderedDict()
    for key, value in mapping.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointConvertError(
                f'{source}: {prefix}{key} is a {type(value).__name__}, expected a tensor'
            )
        out[prefix + _strip_module(key)] = value
    return out


def unwrap_state_dict(obj: dict, source: str = '<checkpoint>') -> 'OrderedDict':
    """Find the weights inside a checkpoint.

    Accepts a flat state dict, ``{'state_dict': ...}`` / ``{'model': ...}``
    wrappers (other entries such as optimizer state are ignored), and
    DINO-style ``{'student': {...}, 'teacher': {...}}`` files (flattened to
    ``student.*`` / ``teacher.*``; a ``dino_loss`` dict becomes
    ``dino_loss.*``); a ``{'teacher': {...}}`` file without a student is a
    teacher-only export and keeps its inner keys. ``module.`` prefixes are
    removed at every level.
    """
    while True:
        inner = next(
            (obj[k] for k in ('state_dict', 'model') if isinstance(obj.get(k), dict)), None
        )
        if inner is None:
            break
        obj = inner
    parts = [k for k in ('student', 'teacher', 'dino_loss') if isinstance(obj.get(k), dict)]
    if not parts:
        return _tensors(obj, '', source)
    flat = OrderedDict()
    for part in parts:
        # Without a student, ``teacher`` holds a teacher-only export whose
        # keys (backbone.*, dino_head.*) are already relative to the teacher.
        sub_prefix = '' if part == 'teacher' and 'student' not in parts else part + '.'
        flat.update(_tensors(obj[part], sub_prefix, source))
    # Loose tensors next to the sub-dicts (e.g. a mask token) are weights too.
    flat.update(_tensors({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, '', source))
    return flat


def _block_chunk_renamer(keys: Iterable[str], source: str) -> Callable[[str], str]:
    """Key renaming ``blocks.{chunk}.{i}.*`` -> ``blocks.{n}.*``, numbering
    blocks by their order (chunk, index)."""
    keys = list(keys)
    pairs = sorted(
        {(int(m.group(1)), int(m.group(2))) for m in map(_CHUNKED_BLOCK.match, keys) if m}
    )
    if not pairs:
        return lambda key: key
    if any(re.match(r'^blocks\.\d+\.[^\d]', k) for k in keys):
        raise CheckpointConvertError(
            f'{source}: mixes chunked (blocks.c.i.*) and plain (blocks.i.*) block keys'
        )
    index = {pair: n for n, pair in enumerate(pairs)}

    def rename(key: str) -> str:
        m = _CHUNKED_BLOCK.match(key)
        if not m:
            return key
        n = index[(int(m.group(1)), int(m.group(2)))]
        return f'blocks.{n}.{m.group(3)}'

    return rename


def flatten_block_chunks(
    state_dict: Dict[str, torch.Tensor], source: str = '<backbone>'
) -> 'OrderedDict':
    """``blocks.{chunk}.{i}.*`` (DINOv2 ``BlockChunk``) -> ``blocks.{n}.*``.

    Blocks are numbered by their order (chunk, index); the ``nn.Identity``
    padding DINOv2 puts in front of later chunks holds no weights, so its
    indices simply never appear. Non-chunked dicts are returned unchanged.
    """
    rename = _block_chunk_renamer(state_dict, source)
    return OrderedDict((rename(k), v) for k, v in state_dict.items())


def _rename_weight_norm(key: str) -> str:
    for old, new in _PARAMETRIZED_WN.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _map_group(
    state_dict: Dict[str, torch.Tensor],
    src_prefix: str,
    dst_prefixes: Tuple[str, ...],
    pattern: re.Pattern,
    out: 'OrderedDict',
    used: set,
    source: str,
    chunked: bool = False,
) -> None:
    """Move ``src_prefix + k`` to every ``dst + k`` for valid sub-keys ``k``
    (block chunks flattened first when ``chunked``)."""
    keys = [k for k in state_dict if k.startswith(src_prefix)]
    subs = [k[len(src_prefix) :] for k in keys]
    rename = (
        _block_chunk_renamer(subs, f'{source}: {src_prefix}*') if chunked else (lambda key: key)
    )
    for src_key, sub in zip(keys, subs):
        sub = _rename_weight_norm(rename(sub))
        if not pattern.match(sub):
            continue
        used.add(src_key)
        for dst in dst_prefixes:
            if dst + sub in out:
                raise CheckpointConvertError(f'{source}: two source keys map to {dst + sub}')
            out[dst + sub] = state_dict[src_key]


def convert_official_to_pera(
    state_dict: Dict[str, torch.Tensor],
    copy_teacher_to_student: bool = False,
    ignore: Iterable[str] = (),
    source: str = '<state dict>',
) -> 'OrderedDict':
    """The released PerA layout -> our :class:`PerA` state dict.

    Full checkpoints map ``student.backbone`` -> ``backbone``,
    ``{student,teacher}.cls_head`` (or ``dino_head``) -> ``projector`` /
    ``teacher.projector``, ``pred_head.mlp0.mlp`` -> ``predictor.mlp``,
    ``pred_head.last_layer`` -> ``predictor.last_layer``, ``s_mask_token`` ->
    ``mask_token`` and ``dino_loss.center`` -> ``cls_loss.center``.
    Teacher-only exports (``backbone.*`` + ``dino_head.*``/``cls_head.*``) map
    to ``teacher.*``, and also to the student keys with
    ``copy_teacher_to_student``.

    Args:
        state_dict: flat weights (see :func:`unwrap_state_dict`).
        copy_teacher_to_student: teacher-only input: also fill
            ``backbone.*`` / ``projector.*``.
        ignore: regular expressions of source keys to drop on purpose.
        source: name used in error messages.

    Raises:
        CheckpointConvertError: a source key has no mapping (all are listed).
    """
    ignore_res = [re.compile(p) for p in ignore]
    state_dict = OrderedDict(
        (k, v) for k, v in state_dict.items() if not any(r.search(k) for r in ignore_res)
    )
    if not state_dict:
        raise CheckpointConvertError(f'{source}: no weights to convert')
    out, used = OrderedDict(), set()
    singles = {'dino_loss.center': 'cls_loss.center'}
    full = any(k.startswith(('student.', 'teacher.')) for k in state_dict)
    if full:
        if copy_teacher_to_student:
            raise CheckpointConvertError(
                f'{source}: copy_teacher_to_student only applies to '
                'teacher-only checkpoints; this one has student.*/teacher.*'
            )
        groups = [
            ('student.backbone.', ('backbone.',), _VIT_KEY, True),
            ('teacher.backbone.', ('teacher.backbone.',), _VIT_KEY, True),
            ('student.cls_head.', ('projector.',), _HEAD_KEY, False),
            ('student.dino_head.', ('projector.',), _HEAD_KEY, False),
            ('teacher.cls_head.', ('teacher.projector.',), _HEAD_KEY, False),
            ('teacher.dino_head.', ('teacher.projector.',), _HEAD_KEY, False),
            ('pred_head.mlp0.', ('predictor.',), _HEAD_KEY, False),
            ('pred_head.', ('predictor.',), re.compile(r'^last_layer\.weight_[gv]$'), False),
        ]
        singles['s_mask_token'] = 'mask_token'
    else:
        copy = copy_teacher_to_student
        backbone_dsts = ('teacher.backbone.',) + (('backbone.',) if copy else ())
        head_dsts = ('teacher.projector.',) + (('projector.',) if copy else ())
        groups = [
            ('backbone.', backbone_dsts, _VIT_KEY, True),
            ('dino_head.', head_dsts, _HEAD_KEY, False),
            ('cls_head.', head_dsts, _HEAD_KEY, False),
        ]
    for src_prefix, dsts, pattern, chunked in groups:
        _map_group(state_dict, src_prefix, dsts, pattern, out, used, source, chunked)
    for src_key, dst_key in singles.items():
        if src_key in state_dict:
            out[dst_key] = state_dict[src_key]
            used.add(src_key)
    unmapped = [k for k in state_dict if k not in used]
    if unmapped:
        raise CheckpointConvertError(
            f'{source}: {_short_list(unmapped)} have no mapping to the PerA '
            'layout (drop them on purpose with ignore / --ignore REGEX)'
        )
    return out


def select_backbone(
    state_dict: Dict[str, torch.Tensor], part: str = 'teacher', source: str = '<state dict>'
) -> 'OrderedDict':
    """The ``teacher.backbone.*`` (or student ``backbone.*``) weights of our
    PerA state dict, with the prefix removed and names checked."""
    prefixes = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}
    if part not in prefixes:
        raise CheckpointConvertError(f"part must be 'teacher' or 'student', got {part!r}")
    prefix = prefixes[part]
    backbone = OrderedDict(
        (k[len(prefix) :], v) for k, v in state_dict.items() if k.startswith(prefix)
    )
    if not backbone:
        raise CheckpointConvertError(
            f"{source} has no '{prefix}*' weights (is it a PerA training checkpoint?)"
        )
    bad = [prefix + k for k in backbone if not is_vit_key(k)]
    if bad:
        raise CheckpointConvertError(f'{source}: {_short_list(bad)} are not PerAViT parameters')
    return backbone


def _mmpretrain_key(key: str) -> Optional[str]:
    if key in ('cls_token', 'pos_embed'):
        return key
    module, _, param = key.rpartition('.')
    param = 'weight' if param == 'gamma' else param
    m = re.match(r'^blocks\.(\d+)\.(.+)$', module)
    new = _VIT_TO_MMPRETRAIN_BLOCK.get(m.group(2)) if m else _VIT_TO_MMPRETRAIN_GLOBAL.get(module)
    if new is None:
        return None
    return f'layers.{m.group(1)}.{new}.{param}' if m else f'{new}.{param}'


def pera_vit_to_mmpretrain(
    state_dict: Dict[str, torch.Tensor], source: str = '<backbone>'
) -> 'OrderedDict':
    """PerAViT keys -> MMPretrain ``VisionTransformer`` keys (same tensors)."""
    out = OrderedDict()
    for key, value in state_dict.items():
        new = _mmpretrain_key(key)
        if new is None:
            raise CheckpointConvertError(
                f'{source}: {key} has no MMPretrain VisionTransformer equivalent'
            )
        out[new] = value
    return out


def mmpretrain_to_pera_vit_key(key: str) -> Optional[str]:
    """An MMPretrain ``VisionTransformer`` key -> the PerAViT key (None if it has none)."""
    if key in ('cls_token', 'pos_embed'):
        return key
    module, _, param = key.rpartition('.')
    m = re.match(r'^layers\.(\d+)\.(.+)$', module)
    table = _VIT_TO_MMPRETRAIN_BLOCK if m else _VIT_TO_MMPRETRAIN_GLOBAL
    name = m.group(2) if m else module
    ours = next((k for k, v in table.items() if v == name), None)
    if ours is None:
        return None
    if ours.startswith('ls'):
        param = 'gamma' if param == 'weight' else param
    return f'blocks.{m.group(1)}.{ours}.{param}' if m else f'{ours}.{param}'


def infer_vit_arch(state_dict: Dict[str, torch.Tensor]) -> dict:
    """Architecture facts readable from PerAViT weights (``num_heads`` is not:
    it does not change any shape)."""
    proj = state_dict['patch_embed.proj.weight']
    blocks = {int(k.split('.')[1]) for k in state_dict if k.startswith('blocks.')}
    fc1 = state_dict.get('blocks.0.mlp.fc1.weight')
    return dict(
        embed_dims=int(proj.shape[0]),
        num_layers=len(blocks),
        feedforward_channels=int(fc1.shape[0]) if fc1 is not None else None,
        patch_size=int(proj.shape[-1]),
        in_channels=int(proj.shape[1]),
        num_patches=int(state_dict['pos_embed'].shape[1]) - 1,
        qkv_bias='blocks.0.attn.qkv.bias' in state_dict,
        layer_scale='blocks.0.ls1.gamma' in state_dict,
    )


def extract_backbone(
    state_dict: Dict[str, torch.Tensor],
    part: str = 'teacher',
    fmt: str = 'pera',
    prefix: Optional[str] = None,
    source: str = '<state dict>',
) -> 'OrderedDict':
    """A PerA state dict -> the backbone weights for downstream use.

    Args:
        state_dict: our PerA model state dict.
        part: 'teacher' (``teacher.backbone.*``, what the paper fine-tunes) or
            'student' (``backbone.*``).
        fmt: 'pera' (PerAViT names) or 'mmpretrain' (VisionTransformer names).
        prefix: prepended to every key, e.g. ``'backbone.'`` so that
            ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` (which
            keeps only keys starting with the prefix and strips it) or a
            whole-model ``load_from`` finds them. A missing trailing dot is
            added, as MMEngine does.
    """
    if fmt not in BACKBONE_FORMATS:
        raise CheckpointConvertError(f'format must be one of {BACKBONE_FORMATS}, got {fmt!r}')
    backbone = select_backbone(state_dict, part, source)
    if fmt == 'mmpretrain':
        backbone = pera_vit_to_mmpretrain(backbone, source)
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        backbone = OrderedDict((prefix + k, v) for k, v in backbone.items())
    return backbone
