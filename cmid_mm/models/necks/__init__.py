from .local_head import CMIDLocalHead  # deprecated alias of CMIDLocalNeck
from .local_neck import CMIDLocalNeck

__all__ = ['CMIDLocalNeck', 'CMIDLocalHead']
