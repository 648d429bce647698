from .knn import knn_leave_one_out, mean_pairwise_cosine

__all__ = ['knn_leave_one_out', 'mean_pairwise_cosine']
