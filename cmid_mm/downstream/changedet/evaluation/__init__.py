from .metrics import CDIoUMetric

__all__ = ['CDIoUMetric']
