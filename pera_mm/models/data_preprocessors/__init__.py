from .bitemporal_data_preprocessor import BitemporalDataPreProcessor
from .hr_mr_data_preprocessor import HRMRDataPreProcessor
from .multiband_data_preprocessor import MultiBandDataPreProcessor

__all__ = ['BitemporalDataPreProcessor', 'MultiBandDataPreProcessor', 'HRMRDataPreProcessor']
