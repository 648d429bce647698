# Copyright (c) pera-mm contributors. All rights reserved.
"""Co-registered high-/mid-resolution (HR/MR) image pairs for cross-scale pretraining."""

import os.path as osp
from typing import List, Sequence

from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS, TRANSFORMS

from ..utils.errors import PeraDataError, PeraFileNotFoundError
from .transforms.paired_loading import check_scale, pair_name


@DATASETS.register_module()
class PairedHRMRDataset(BaseDataset):
    """HR/MR pairs listed in an annotation file, any band count.

    The annotation file has one pair per line, ``<mr path> <hr path>`` separated by
    white space (so paths hold no spaces), relative to ``data_root`` unless absolute;
    blank lines and lines starting with ``#`` are ignored. Files are GeoTIFF (read by
    rasterio), PNG/JPEG or ``.npy`` (H, W, C). The HR image must be exactly ``scale``
    times the MR image on each side, cover the same ground, and (GeoTIFFs) share its
    CRS and origin with a pixel ``scale`` times smaller.

    At construction every listed file must exist (a one-line
    :class:`PeraFileNotFoundError` naming the line and the pair); sizes, band counts and
    georeferencing are checked on every load by :class:`LoadHRMRPairFromFile`, so a
    bad pair stops training with a one-line :class:`PeraDataError` naming it (pairs are
    never skipped: a misregistered pair is a data error, not noise).

    Each data info is ``dict(img_path=MR, hr_img_path=HR, scale=s)`` (plus
    ``sample_idx``); after the pipeline, results hold ``img`` (MR, H x W x C),
    ``hr_img`` (sH x sW x C) and ``scale``.

    Args:
        ann_file (str): the pair list (see above).
        data_root (str): root of the relative paths and of ``ann_file``.
        scale (int): HR/MR resolution ratio s. Defaults to 2.
        pipeline (Sequence): transforms, e.g. ``LoadHRMRPairFromFile``,
            ``PairedRandomCrop``, ``PairedRandomFlip``, ``PackHRMRInputs``.
        **kwargs: other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    def __init__(
        self,
        ann_file: str,
        data_root: str = '',
        scale: int = 2,
        pipeline: Sequence = (),
        **kwargs,
    ):
        self.scale = check_scale(scale, type(self).__name__)
        if data_root and not osp.isdir(data_root):
            raise PeraFileNotFoundError(
                f'data_root {data_root!r} does not exist or is not a directory'
            )
        path = ann_file if osp.isabs(ann_file) or not data_root else osp.join(data_root, ann_file)
        if not osp.isfile(path):
            raise PeraFileNotFoundError(f'ann_file {path!r} does not exist')
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def _join(self, path: str) -> str:
        return path if osp.isabs(path) or not self.data_root else osp.join(self.data_root, path)

    def load_data_list(self) -> List[dict]:
        """Parse the pair list and check that every file exists."""
        data_list = []
        with open(self.ann_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                fields = line.split()
                if len(fields) != 2:
                    raise PeraDataError(
                        f'{self.ann_file}:{lineno}: expected "<mr path> <hr path>", got '
                        f'{len(fields)} field(s): {line!r}'
                    )
                mr, hr = (self._join(p) for p in fields)
                for which, p in (('MR', mr), ('HR', hr)):
                    if not osp.isfile(p):
                        raise PeraFileNotFoundError(
                            f'{self.ann_file}:{lineno}: {pair_name(mr, hr)}: the {which} file '
                            f'does not exist'
                        )
                data_list.append(dict(img_path=mr, hr_img_path=hr, scale=self.scale))
        if not data_list:
            raise PeraDataError(f'ann_file {self.ann_file!r} lists no pairs')
        return data_list
