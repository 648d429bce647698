from .change_feature_projection import ChangeFeatureProjection
from .ijepa_predictor import IJEPAPredictor

__all__ = ['ChangeFeatureProjection', 'IJEPAPredictor']
