# Copyright (c) pera-mm contributors. All rights reserved.
"""The "false HR" control: an HR image made by interpolating the MR image."""

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError
from .paired_loading import check_scale

FALSE_HR_MODES = ('nearest', 'bilinear', 'bicubic')


@TRANSFORMS.register_module()
class FalseHRFromMR(BaseTransform):
    """Replace ``hr_img`` by the MR image upsampled s times (the paper's "false HR").

    The control of the cross-scale method: an HR teacher that sees no detail the MR
    image does not have. Upsampling is ``torch.nn.functional.interpolate`` on float32
    values with ``mode`` (default 'bicubic', ``align_corners=False``: pixel centres
    of the HR grid map to ``(i + 0.5) / s - 0.5`` on the MR grid; 'nearest' repeats each
    MR pixel s x s). Bicubic values are not clipped, so they may overshoot the MR range
    near edges. Put it after :class:`PairedRandomCrop` to interpolate the crop only
    (borders then replicate the crop's edge pixels), or before it for the whole image.

    Required Keys: ``img``, ``scale``. Modified/Added Keys: ``hr_img`` (float32),
    ``hr_img_shape``, ``false_hr`` (the mode).

    Args:
        mode (str): 'nearest', 'bilinear' or 'bicubic'. Defaults to 'bicubic'.
    """

    def __init__(self, mode: str = 'bicubic'):
        if mode not in FALSE_HR_MODES:
            raise PeraConfigError(
                f'{type(self).__name__}: mode must be one of {FALSE_HR_MODES}, got {mode!r}'
            )
        self.mode = mode

    def transform(self, results: dict) -> dict:
        """Upsample ``img`` by ``scale`` into ``hr_img``."""
        scale = check_scale(results.get('scale'), type(self).__name__, "results['scale']")
        mr = torch.from_numpy(np.ascontiguousarray(results['img'], dtype=np.float32))
        x = mr.permute(2, 0, 1)[None]
        kwargs = {} if self.mode == 'nearest' else dict(align_corners=False)
        hr = F.interpolate(x, scale_factor=scale, mode=self.mode, **kwargs)[0]
        results['hr_img'] = np.ascontiguousarray(hr.permute(1, 2, 0).numpy())
        results['hr_img_shape'] = results['hr_img'].shape[:2]
        results['false_hr'] = self.mode
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mode={self.mode!r})'
