# Copyright (c) pera-mm contributors. All rights reserved.
"""Packing of PerA's views followed by the HR global crops (PerA + spatial affinity)."""

from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError


@TRANSFORMS.register_module()
class PackPerAViewsWithHR(PackInputs):
    """:class:`PackInputs` of ``img + hr_views``: PerA's 2 (nG + nL) views, then nG HR crops.

    :class:`PairedPerAMultiCropViews` keeps the HR crops apart (``hr_views``) so that
    ``DisjointMaskGenerator`` sees exactly PerA's views; this packer appends them,
    the ``inputs`` order :class:`PerA` with ``spatial_affinity`` expects. Views keep
    their dtype (the data preprocessor casts and normalises each view batch).
    ``PackHRMRInputs`` does not fit: it packs exactly ``[mr, hr]``.

    Required keys: ``img`` (list of views), ``hr_views``, ``num_global_crops``.
    Other arguments: :class:`PackInputs`'s.
    """

    def transform(self, results: dict) -> dict:
        """``PackInputs`` with ``inputs = views + hr_views``."""
        hr, n_g = results.get('hr_views'), results.get('num_global_crops')
        if not isinstance(hr, list) or len(hr) != n_g:
            got = len(hr) if isinstance(hr, list) else type(hr).__name__
            raise PeraConfigError(
                f"{type(self).__name__} needs results['hr_views'] with num_global_crops={n_g} "
                f'HR crops (PairedPerAMultiCropViews with with_hr=True), got {got}'
            )
        results = dict(results)
        results['img'] = list(results['img']) + hr
        return super().transform(results)
