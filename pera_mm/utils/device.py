# Copyright (c) pera-mm contributors. All rights reserved.
"""Which accelerator the process can use."""

from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available


def amp_device_available() -> bool:
    """Whether a device MMEngine's ``AmpOptimWrapper`` supports is present."""
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()
