# Copyright (c) pera-mm contributors. All rights reserved.
"""The colour-histogram floor: what a feature that only sees colours scores.

Remote-sensing scene classes differ a lot in colour (forest, desert, sea), so a
learned representation has to beat this to show it learned more than colour.
"""

import torch

from ..utils.errors import PeraDataError

#: Bins per RGB channel (8 x 8 x 8 = 512 bins).
BINS_PER_CHANNEL = 8


def colour_histogram(images, bins: int = BINS_PER_CHANNEL) -> torch.Tensor:
    """Square-rooted, L2-normalised joint RGB histograms of uint8 images.

    Each channel value ``v`` in 0-255 falls in bin ``v * bins // 256`` (8 bins:
    32 grey levels each); the joint bin is ``(r * bins + g) * bins + b``. The
    counts are square-rooted (Hellinger) and the vector L2-normalised.
    Deterministic: integer counting, no sampling.

    Args:
        images: ``(B, 3, H, W)`` RGB batch (or one ``(3, H, W)`` image) with
            values in 0-255 (uint8 or integral floats).
        bins: bins per channel.

    Returns:
        Tensor: ``(B, bins ** 3)`` float64 features (``(bins ** 3,)`` for one image).
    """
    x = torch.as_tensor(images)
    single = x.ndim == 3
    if single:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise PeraDataError(
            f'colour_histogram: expected (B, 3, H, W) RGB images, got {tuple(x.shape)}'
        )
    if x.numel() == 0:
        raise PeraDataError('colour_histogram: empty image batch')
    if x.is_floating_point():
        x = x.round()
    x = x.long()
    if int(x.min()) < 0 or int(x.max()) > 255:
        raise PeraDataError('colour_histogram: values must be in 0-255 (unnormalised RGB)')
    q = x * bins // 256
    joint = ((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]).flatten(1)
    counts = torch.zeros(x.shape[0], bins**3, dtype=torch.float64)
    counts.scatter_add_(1, joint, torch.ones_like(joint, dtype=torch.float64))
    hist = torch.nn.functional.normalize(counts.sqrt(), dim=1)
    return hist[0] if single else hist
