# Copyright (c) pera-mm contributors. All rights reserved.
"""Helpers shared by the test suite and the benchmarks (not imported by the package)."""

from .config_shrink import (
    TINY_ARCH,
    build_small_model,
    shrink_model_config,
    shrink_pipeline,
    synthetic_batch,
)
from .paths import (
    REPO_ROOT,
    REQUIRE_SHARED_ENV,
    SHARED_DATA_ENV,
    shared_data_required,
    shared_data_root,
)
from .pera_checkpoint import PERA_CONFIG, make_pera_checkpoint

__all__ = [
    'TINY_ARCH',
    'build_small_model',
    'shrink_model_config',
    'shrink_pipeline',
    'synthetic_batch',
    'PERA_CONFIG',
    'make_pera_checkpoint',
    'REPO_ROOT',
    'SHARED_DATA_ENV',
    'REQUIRE_SHARED_ENV',
    'shared_data_root',
    'shared_data_required',
]
