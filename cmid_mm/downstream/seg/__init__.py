"""cmid_mm in mmsegmentation (``default_scope='mmseg'``).

* :class:`PotsdamNoClutterDataset`, :class:`VaihingenNoClutterDataset`: ISPRS with the clutter
  class ignored, the CMID paper's five-class protocol;
* :class:`SegLabelCheckHook`: stops on label values outside the model's classes.

Configs reach them by name once ``custom_imports`` lists ``cmid_mm.downstream.seg``.
"""
from ...utils.version_guard import check_downstream

check_downstream('seg')

from .datasets import PotsdamNoClutterDataset, VaihingenNoClutterDataset  # noqa: E402
from .label_check_hook import SegLabelCheckHook, check_seg_labels  # noqa: E402

__all__ = [
    'PotsdamNoClutterDataset', 'VaihingenNoClutterDataset', 'SegLabelCheckHook',
    'check_seg_labels'
]
