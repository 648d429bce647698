from .bank_query_dataset import BankQueryFolderDataset
from .bank_query_knn_metric import BankQueryKNNMetric, protocol_scores
from .change_metric import ChangeDetectionMetric
from .coco_style_ap_metric import CocoStyleAPMetric
from .colour_histogram import colour_histogram
from .feature_adaptors import build_feature_adaptor
from .iou_f1_metric import IoUF1Metric
from .knn import knn_leave_one_out, mean_pairwise_cosine
from .knn_protocol import list_classes, split_bank_query, weighted_knn_top1
from .loveda_submission_metric import LoveDASubmissionMetric
from .ridge_probe import ridge_probe_scores, ridge_probe_top1

__all__ = [
    'knn_leave_one_out',
    'mean_pairwise_cosine',
    'IoUF1Metric',
    'LoveDASubmissionMetric',
    'ChangeDetectionMetric',
    'CocoStyleAPMetric',
    'list_classes',
    'split_bank_query',
    'weighted_knn_top1',
    'BankQueryFolderDataset',
    'BankQueryKNNMetric',
    'protocol_scores',
    'colour_histogram',
    'build_feature_adaptor',
    'ridge_probe_scores',
    'ridge_probe_top1',
]
