from .knn import knn_leave_one_out, mean_pairwise_cosine

__all__ = ['knn_leave_one_out', 'mean_pairwise_cosine']
from .iou_f1_metric import IoUF1Metric  # noqa: E402
from .loveda_submission_metric import LoveDASubmissionMetric  # noqa: E402

__all__ += ['IoUF1Metric', 'LoveDASubmissionMetric']
from .change_metric import ChangeDetectionMetric  # noqa: E402

__all__ += ['ChangeDetectionMetric']
