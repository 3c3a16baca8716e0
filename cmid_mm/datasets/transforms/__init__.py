from .block_mask import BlockMaskGenerator
from .crop import RandomResizedCropWithBox
from .multi_view import CMIDMultiView
from .noise import RandomGaussianNoise

__all__ = [
    'BlockMaskGenerator', 'RandomResizedCropWithBox', 'CMIDMultiView', 'RandomGaussianNoise'
]
