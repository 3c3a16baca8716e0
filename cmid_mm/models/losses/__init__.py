from .dino_local_loss import DINOLocalLoss  # deprecated alias of heads.DINOLocalHead
from .focal_frequency_loss import FocalFrequencyLoss
from .focal_l1_loss import FocalL1Loss

__all__ = ['DINOLocalLoss', 'FocalFrequencyLoss', 'FocalL1Loss']

