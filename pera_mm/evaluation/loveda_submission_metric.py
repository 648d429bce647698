# Copyright (c) pera-mm contributors. All rights reserved.
"""Write segmentation predictions in the LoveDA test-server format."""

import os
import os.path as osp
import zipfile
from collections import Counter
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from PIL import Image

from ..utils.errors import PeraConfigError, PeraDataError


@METRICS.register_module()
class LoveDASubmissionMetric(BaseMetric):
    """Save each prediction as a PNG for the LoveDA test server (no scores).

    One single-channel 8-bit PNG per input image, named as the input
    (``<img_dir>/4191.png`` -> ``<output_dir>/4191.png``), at the input's
    full size, valued with the model's class indices 0..6 (background,
    building, road, water, barren, forest, agricultural). MMSeg's
    ``IoUMetric(format_only=True)`` instead adds 1 under
    ``reduce_zero_label`` (values 1..7), which the server rejects.

    Every rank writes its own images; after the collection the main process
    checks that no two inputs share a name and, when ``zip_path`` is set,
    packs the PNGs (at the root of the archive) into that zip.

    Args:
        output_dir (str): folder the PNGs are written to (created if needed).
        zip_path (str, optional): also write the PNGs into this zip file.
            Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        prefix (str, optional): as in ``BaseMetric``.
    """

    def __init__(
        self,
        output_dir: str,
        zip_path: Optional[str] = None,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(output_dir, str) or not output_dir:
            raise PeraConfigError(
                f'LoveDASubmissionMetric: output_dir must be a folder path, got {output_dir!r}'
            )
        if zip_path is not None and (not isinstance(zip_path, str) or not zip_path):
            raise PeraConfigError(
                f'LoveDASubmissionMetric: zip_path must be a file path or None, got {zip_path!r}'
            )
        self.output_dir = output_dir
        self.zip_path = zip_path

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Write the PNG of every prediction in the batch.

        Args:
            data_batch (dict): the batch (unused).
            data_samples (Sequence[dict]): the model's outputs with ``pred_sem_seg``,
                ``img_path`` and ``ori_shape``.
        """
        num_classes = len(self.dataset_meta['classes']) if self.dataset_meta else 256
        os.makedirs(self.output_dir, exist_ok=True)
        for sample in data_samples:
            img_path = sample['img_path']
            pred = sample['pred_sem_seg']['data']
            pred = pred.squeeze(0) if pred.ndim == 3 else pred
            pred = pred.cpu().numpy()
            ori_shape = tuple(sample.get('ori_shape', pred.shape))
            if pred.ndim != 2 or pred.shape != ori_shape:
                raise PeraDataError(
                    f'LoveDASubmissionMetric: the prediction for {img_path} has shape '
                    f'{pred.shape}, expected the full image size {ori_shape}'
                )
            if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
                raise PeraDataError(
                    f'LoveDASubmissionMetric: the prediction for {img_path} has values '
                    f'{int(pred.min())}..{int(pred.max())}, expected 0..{num_classes - 1}'
                )
            name = osp.splitext(osp.basename(img_path))[0] + '.png'
            Image.fromarray(pred.astype(np.uint8)).save(osp.join(self.output_dir, name))
            self.results.append(name)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Check the written names and pack the zip.

        Args:
            results (list): the PNG names written by every rank.

        Returns:
            dict: empty (a test-server export has no scores).
        """
        repeated = [name for name, n in Counter(results).items() if n > 1]
        if repeated:
            raise PeraDataError(
                f'LoveDASubmissionMetric: several inputs give the same output name '
                f'({", ".join(sorted(repeated)[:5])}), so predictions in {self.output_dir} '
                'were overwritten'
            )
        logger: MMLogger = MMLogger.get_current_instance()
        if self.zip_path:
            os.makedirs(osp.dirname(osp.abspath(self.zip_path)), exist_ok=True)
            with zipfile.ZipFile(self.zip_path, 'w', zipfile.ZIP_DEFLATED) as archive:
                for name in sorted(results):
                    archive.write(osp.join(self.output_dir, name), arcname=name)
        where = f'{self.output_dir}' + (f' and {self.zip_path}' if self.zip_path else '')
        print_log(f'LoveDA test-server export: {len(results)} PNGs (0..6) in {where}', logger)
        return {}
