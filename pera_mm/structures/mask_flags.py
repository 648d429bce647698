# Copyright (c) pera-mm contributors. All rights reserved.
"""The per-patch flags that masks carry from the data pipeline to the model.

A mask is an integer map over a crop's patch grid (raster order); each entry
ORs the flags below. Transforms write them, algorithms read them, so they live
here rather than in either side.
"""

import torch

from ..utils.errors import PeraDataError

#: The student sees this patch.
MASK_S = 1
#: The student gets a learnable mask token at this patch (pixel target).
MASK_L = 2
#: The teacher sees this patch.
MASK_T = 4


def flag_indices(masks: torch.Tensor, flag: int, field: str = 'masks') -> torch.Tensor:
    """Ascending patch indices per row where ``flag`` is set: (N, L) -> (N, K).

    Every row must hold the same number of such patches; PerA's disjoint masks
    do by construction (the counts come from the ratios alone). Meant for the
    CPU masks of the data pipeline: nothing is read back to the host here
    (``unique`` and ``nonzero`` size their outputs themselves), so on the CPU
    the check costs no synchronisation with an accelerator.

    Args:
        masks (Tensor): (N, L) integer flag maps.
        flag (int): one of ``MASK_S``, ``MASK_L``, ``MASK_T``.
        field (str): name used in the error message.
    """
    hit = (masks & flag) != 0
    counts = hit.sum(1).unique()
    if counts.numel() > 1:
        raise PeraDataError(
            f'{field}: rows select different numbers of patches with flag '
            f'{flag} ({counts.tolist()}); sparse paths need equal counts'
        )
    return hit.nonzero()[:, 1].view(masks.shape[0], -1)
