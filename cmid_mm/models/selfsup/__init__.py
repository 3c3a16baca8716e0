from .cmid import CMID

__all__ = ['CMID']
