from .bitemporal_data_preprocessor import BitemporalDataPreProcessor

__all__ = ['BitemporalDataPreProcessor']
