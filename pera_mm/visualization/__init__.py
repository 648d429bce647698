"""Analysis of trained PerA models: attention maps, reconstructions, feature plots, curves.

The logic of ``tools/analysis_tools/*``; the command-line scripts are thin wrappers.
"""

from .encoder_features import (
    POOLS,
    effective_rank,
    encoder_features,
    feature_statistics,
    pairwise_cosines,
)
from .encoder_loading import PARTS, build_backbone, encoder_weights, load_encoder
from .feature_embedding import METHODS, check_method, embed_2d
from .images import labelled_images, list_images, model_inputs, normalisation, read_rgb
from .masked_reconstruction import (
    HIDDEN_FILL,
    configured_mask_ratios,
    denormalise_patches,
    draw_disjoint_mask,
    mask_counts,
    reconstruct,
)
from .pera_model_loading import build_pera_model, load_reconstruction_weights
from .self_attention import attention_weights, block_attention, cls_attention_maps, resolve_block
from .training_scalars import (
    collapse_thresholds,
    curve_groups,
    figure_panels,
    find_scalars_files,
    read_scalar_rows,
    train_curves,
    val_curves,
)

__all__ = [
    'POOLS',
    'effective_rank',
    'encoder_features',
    'feature_statistics',
    'pairwise_cosines',
    'PARTS',
    'build_backbone',
    'encoder_weights',
    'load_encoder',
    'METHODS',
    'check_method',
    'embed_2d',
    'labelled_images',
    'list_images',
    'model_inputs',
    'normalisation',
    'read_rgb',
    'HIDDEN_FILL',
    'configured_mask_ratios',
    'denormalise_patches',
    'draw_disjoint_mask',
    'mask_counts',
    'reconstruct',
    'build_pera_model',
    'load_reconstruction_weights',
    'attention_weights',
    'block_attention',
    'cls_attention_maps',
    'resolve_block',
    'collapse_thresholds',
    'curve_groups',
    'figure_panels',
    'find_scalars_files',
    'read_scalar_rows',
    'train_curves',
    'val_curves',
]
