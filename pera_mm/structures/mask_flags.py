# Copyright (c) pera-mm contributors. All rights reserved.
"""The per-patch flags that masks carry from the data pipeline to the model.

A mask is an integer map over a crop's patch grid (raster order); each entry
ORs the flags below. Transforms write them, algorithms read them, so they live
here rather than in either side.
"""
import torch

#: The student sees this patch.
MASK_S = 1
#: The student gets a learnable mask token at this patch (pixel target).
MASK_L = 2
#: The teacher sees this patch.
MASK_T = 4


def flag_indices(masks: torch.Tensor, flag: int) -> torch.Tensor:
    """Ascending patch indices per row where ``flag`` is set: (N, L) -> (N, K).

    Every row must hold the same number of such patches. PerA's disjoint masks
    do by construction (the counts come from the ratios alone), which the
    algorithm checks once per step shape, not per call (no host sync here).
    """
    return ((masks & flag) != 0).nonzero()[:, 1].view(masks.shape[0], -1)
