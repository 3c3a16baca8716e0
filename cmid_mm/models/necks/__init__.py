from .local_head import CMIDLocalHead

__all__ = ['CMIDLocalHead']
