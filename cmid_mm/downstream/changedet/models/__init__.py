from .bit_head import BITHead
from .data_preprocessor import DualInputSegDataPreProcessor
from .fusion_neck import FeatureFusionNeck
from .ia_swin import IA_SwinTransformer
from .siam_encoder_decoder import SiamEncoderDecoder

__all__ = [
    'BITHead', 'DualInputSegDataPreProcessor', 'FeatureFusionNeck', 'IA_SwinTransformer',
    'SiamEncoderDecoder'
]
