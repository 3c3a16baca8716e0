from .cmid_constructor import CMIDOptimWrapperConstructor

__all__ = ['CMIDOptimWrapperConstructor']
