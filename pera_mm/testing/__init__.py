# Copyright (c) pera-mm contributors. All rights reserved.
"""Helpers shared by the test suite and the benchmarks (not imported by the package)."""
from .config_shrink import (TINY_ARCH, build_small_model, shrink_model_config,
                            shrink_pipeline, synthetic_batch)

__all__ = ['TINY_ARCH', 'build_small_model', 'shrink_model_config', 'shrink_pipeline',
           'synthetic_batch']
