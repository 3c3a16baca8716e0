"""Downstream datasets registered in mmseg's and mmdet's registries.

* :class:`PotsdamNoClutterDataset`, :class:`VaihingenNoClutterDataset` (mmseg): ISPRS with
  the clutter class ignored, the CMID paper's five-class protocol.
* :class:`DIORDataset` (mmdet): DIOR horizontal boxes, 20 classes, VOC-style XML.

Configs reach them by name under their toolbox's default scope
(``default_scope='mmseg'`` / ``'mmdet'``) once ``custom_imports`` lists ``cmid_mm``.
"""
from .det_datasets import DIOR_CLASSES, DIORDataset
from .seg_datasets import PotsdamNoClutterDataset, VaihingenNoClutterDataset

__all__ = [
    'DIOR_CLASSES', 'DIORDataset', 'PotsdamNoClutterDataset', 'VaihingenNoClutterDataset'
]
