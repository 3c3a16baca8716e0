"""Change detection on mmsegmentation, in open-cd's config vocabulary.

open-cd is on no package registry, so cmid_mm provides the pieces its configs name, registered
in **mmseg's** registries (``default_scope='mmseg'``): an open-cd config ports by changing its
scope (``opencd`` -> ``mmseg``), with
``custom_imports=dict(imports=['cmid_mm.downstream.changedet'])``.
Laid out as open-cd's package: ``datasets/`` (datasets, transforms), ``models/``,
``evaluation/``.

- ``DualInputSegDataPreProcessor``: per-date colour order / mean / std, then mmseg padding;
- ``SiamEncoderDecoder``: one shared backbone on both dates, a neck fuses, mmseg heads decode;
- ``FeatureFusionNeck``: ``concat`` / ``sum`` / ``diff`` / ``abs_diff`` per level;
- ``BITHead``: bitemporal image transformer (Chen et al. 2021), the paper's CD model;
- ``MultiImg*`` transforms: load / annotations / crop / flip / resize / pack image pairs;
- ``LEVIR_CD_Dataset``: LEVIR-CD A/B/label PNG, labels 0/255 -> 0/1;
- ``CDD_Dataset`` (alias ``SVCD_Dataset``): CDD A/B/label JPEG, labels thresholded at 128;
- ``CDIoUMetric``: mmseg's IoUMetric plus ``changed_F1`` / ``changed_IoU`` / precision / recall
  of the ``changed`` class with undefined (NaN) ratios counted as 0, for ``save_best``;
- ``IA_SwinTransformer``: mmseg's Swin for open-cd's Changer (two dates, interaction layers).

``CDIoUMetric`` and ``IA_SwinTransformer`` also serve open-cd configs
(``default_scope='opencd'``) as ``mmseg.CDIoUMetric`` / ``mmseg.IA_SwinTransformer``.
"""
from ...utils.version_guard import check_downstream

check_downstream('changedet')

# flake8: noqa: E402
from .datasets import (BaseCDFolderDataset, CDD_Dataset, LEVIR_CD_Dataset,
                       MultiImgLoadAnnotations, MultiImgLoadImageFromFile, MultiImgPackSegInputs,
                       MultiImgRandomCrop, MultiImgRandomFlip, MultiImgResize)
from .evaluation import CDIoUMetric
from .models import (BITHead, DualInputSegDataPreProcessor, FeatureFusionNeck,
                     IA_SwinTransformer, SiamEncoderDecoder)

__all__ = [
    'BITHead', 'CDIoUMetric', 'IA_SwinTransformer', 'DualInputSegDataPreProcessor',
    'BaseCDFolderDataset', 'CDD_Dataset', 'LEVIR_CD_Dataset', 'FeatureFusionNeck',
    'SiamEncoderDecoder', 'MultiImgLoadAnnotations', 'MultiImgLoadImageFromFile',
    'MultiImgPackSegInputs', 'MultiImgRandomCrop', 'MultiImgRandomFlip', 'MultiImgResize'
]
