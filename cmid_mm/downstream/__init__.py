"""Downstream datasets registered in mmseg's and mmdet's registries.

* :class:`PotsdamNoClutterDataset`, :class:`VaihingenNoClutterDataset` (mmseg): ISPRS with
  the clutter class ignored, the CMID paper's five-class protocol.
* :class:`DIORDataset` (mmdet): DIOR horizontal boxes, 20 classes, VOC-style XML.
* :class:`SegLabelCheckHook` (mmseg): stops on label values outside the model's classes.

Configs reach them by name under their toolbox's default scope
(``default_scope='mmseg'`` / ``'mmdet'``) once ``custom_imports`` lists ``cmid_mm``.
"""
from .det_datasets import DIOR_CLASSES, DIORDataset
from .label_check_hook import SegLabelCheckHook, check_seg_labels
from .seg_datasets import PotsdamNoClutterDataset, VaihingenNoClutterDataset

__all__ = [
    'DIOR_CLASSES', 'DIORDataset', 'PotsdamNoClutterDataset', 'VaihingenNoClutterDataset',
    'SegLabelCheckHook', 'check_seg_labels'
]
