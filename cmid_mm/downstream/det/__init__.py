"""cmid_mm in mmdetection (``default_scope='mmdet'``): :class:`DIORDataset` (DIOR horizontal
boxes, 20 classes, VOC-style XML). Configs reach it by name once ``custom_imports`` lists
``cmid_mm.downstream.det``.
"""
from ...utils.version_guard import check_downstream

check_downstream('det')

from .datasets import DIOR_CLASSES, DIORDataset  # noqa: E402

__all__ = ['DIOR_CLASSES', 'DIORDataset']
