# Copyright (c) pera-mm contributors. All rights reserved.
"""An evaluation set of the fixed protocol: the bank and query images of a class-folder tree."""

from typing import Sequence

from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from .knn_protocol import list_classes, split_bank_query

#: ``split`` values of the data samples.
BANK, QUERY = 'bank', 'query'


@DATASETS.register_module()
class BankQueryFolderDataset(BaseDataset):
    """The bank and query images of one folder-per-class set, in one dataset.

    Samples come from :func:`split_bank_query` (images ``bank`` of each class
    first, then ``query``, by the trailing number of the file name) and carry
    ``gt_label`` and ``split`` (``'bank'`` or ``'query'``; keep ``'split'`` in
    ``PackInputs.meta_keys``) for :class:`BankQueryKNNMetric`. A class folder
    without the images the split needs is a one-line :class:`PeraDataError`.

    Args:
        data_root (str): folder holding one sub-folder per class.
        bank (Sequence[int]): inclusive first and last image number of the bank.
        query (Sequence[int]): inclusive first and last image number of the queries.
        pipeline (Sequence[dict]): transforms of each sample.
        **kwargs: other ``mmengine.dataset.BaseDataset`` arguments.
    """

    def __init__(
        self,
        data_root: str,
        bank: Sequence[int] = (1, 5),
        query: Sequence[int] = (6, 10),
        pipeline: Sequence[dict] = (),
        **kwargs,
    ):
        self.bank, self.query = tuple(bank), tuple(query)
        metainfo = dict(classes=tuple(list_classes(data_root)))
        super().__init__(data_root=data_root, metainfo=metainfo, pipeline=list(pipeline), **kwargs)

    def load_data_list(self):
        """``img_path``, ``gt_label`` and ``split`` of every bank, then query, image."""
        bank, query = split_bank_query(self.data_root, self.bank, self.query)
        return [
            dict(img_path=path, gt_label=label, split=split)
            for split, samples in ((BANK, bank), (QUERY, query))
            for path, label in samples
        ]
