from .dino_local_head import DINOLocalHead
from .mim_head import CMIDMIMHead
from .queue_contrastive_head import QueueContrastiveHead

__all__ = ['CMIDMIMHead', 'DINOLocalHead', 'QueueContrastiveHead']
