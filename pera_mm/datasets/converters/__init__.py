# Copyright (c) pera-mm contributors. All rights reserved.
"""Dataset preparation: official archives -> MMSeg folder layouts (tools/dataset_converters)."""

from .annotation_index import walk_images, write_annotation
from .archive_source import ArchiveSource, decode_image, image_size
from .hr_mr_pairs import cut_hr_mr_pairs, tile_windows
from .isprs_cli import isprs_arg_parser, run_isprs_converter
from .isprs_conversion import (
    DEFAULT_LABEL_VARIANT,
    POTSDAM,
    VAIHINGEN,
    IsprsTileSet,
    convert_isprs,
)
from .isprs_palette import ISPRS_PALETTE, isprs_colour_to_index, isprs_index_to_colour
from .loveda_conversion import LOVEDA_ARCHIVES, convert_loveda
from .scene_tiling import TilingSpec, read_scene, scale_to_uint8, tile_scene, tile_scenes
from .sliding_window import sliding_window_boxes, sliding_window_starts

__all__ = [
    'ArchiveSource',
    'decode_image',
    'image_size',
    'IsprsTileSet',
    'POTSDAM',
    'VAIHINGEN',
    'DEFAULT_LABEL_VARIANT',
    'convert_isprs',
    'isprs_arg_parser',
    'run_isprs_converter',
    'ISPRS_PALETTE',
    'isprs_colour_to_index',
    'isprs_index_to_colour',
    'LOVEDA_ARCHIVES',
    'convert_loveda',
    'sliding_window_starts',
    'sliding_window_boxes',
    'cut_hr_mr_pairs',
    'tile_windows',
    'walk_images',
    'write_annotation',
    'TilingSpec',
    'read_scene',
    'scale_to_uint8',
    'tile_scene',
    'tile_scenes',
]
