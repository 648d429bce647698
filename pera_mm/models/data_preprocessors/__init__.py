from .bitemporal_data_preprocessor import BitemporalDataPreProcessor
from .multiband_data_preprocessor import MultiBandDataPreProcessor

__all__ = ['BitemporalDataPreProcessor', 'MultiBandDataPreProcessor']
