from .attention import Attention
from .pos_embed import infer_square_grid, resize_pos_embed
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
]
