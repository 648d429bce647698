from .attention import Attention
from .pos_embed import (
    infer_square_grid,
    resize_pos_embed,
    sincos_pos_embed_2d,
    sincos_pos_embed_for_grid,
)
from .rope import RotaryPositionEmbedding2D, apply_rope
from .swiglu import SwiGLUMlp
from .transformer_block import Block, LayerScale, Mlp
from .weight_norm_linear import WeightNormLinear

__all__ = [
    'Attention',
    'Block',
    'LayerScale',
    'Mlp',
    'WeightNormLinear',
    'resize_pos_embed',
    'infer_square_grid',
    'sincos_pos_embed_2d',
    'sincos_pos_embed_for_grid',
    'RotaryPositionEmbedding2D',
    'apply_rope',
    'SwiGLUMlp',
]
