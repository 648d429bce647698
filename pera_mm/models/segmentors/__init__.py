from .linear_probe_encoder_decoder import LinearProbeEncoderDecoder
from .siamese_encoder_decoder import SiameseEncoderDecoder

__all__ = ['SiameseEncoderDecoder', 'LinearProbeEncoderDecoder']
