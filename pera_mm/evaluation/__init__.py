from .change_metric import ChangeDetectionMetric
from .coco_style_ap_metric import CocoStyleAPMetric
from .iou_f1_metric import IoUF1Metric
from .knn import knn_leave_one_out, mean_pairwise_cosine
from .loveda_submission_metric import LoveDASubmissionMetric

__all__ = [
    'knn_leave_one_out',
    'mean_pairwise_cosine',
    'IoUF1Metric',
    'LoveDASubmissionMetric',
    'ChangeDetectionMetric',
    'CocoStyleAPMetric',
]
