from .feature_knn_val_loop import FeatureKNNValLoop

__all__ = ['FeatureKNNValLoop']
