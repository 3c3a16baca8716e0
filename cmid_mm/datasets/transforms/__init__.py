from .block_mask import BlockMaskGenerator
from .crop import RandomResizedCropWithBox
from .loading import LoadRSImageFromFile
from .multi_view import CMIDMultiView
from .multispectral import RandomBandGainJitter, RandomBandGaussianBlur
from .noise import RandomGaussianNoise
from .sample_seed import PerSampleSeed

__all__ = [
    'BlockMaskGenerator', 'RandomResizedCropWithBox', 'CMIDMultiView', 'RandomGaussianNoise',
    'PerSampleSeed', 'LoadRSImageFromFile', 'RandomBandGainJitter', 'RandomBandGaussianBlur'
]
