"""ISPRS Potsdam / Vaihingen with the clutter class ignored: the CMID paper's protocol.

mmseg's ``PotsdamDataset`` / ``ISPRSDataset`` (Vaihingen) train and evaluate six classes,
clutter included. The paper (method.md §8) ignores clutter: five classes are trained and
evaluated, clutter pixels count nowhere. These subclasses express exactly that through mmseg's
own mechanism for class subsets, the dataset's ``label_map`` that ``LoadAnnotations`` applies
after ``reduce_zero_label``:

    label PNG value        0         1        2         3         4     5    6
    meaning                boundary  imperv.  building  low veg.  tree  car  clutter
    stock 6-class id       255       0        1         2         3     4    5
    ``*NoClutterDataset``  255       0        1         2         3     4    255

(Label PNGs as written by mmseg's ``tools/dataset_converters/{potsdam,vaihingen}.py``.) Use
them with ``num_classes=5`` in the decode and auxiliary heads; the ``IoUMetric`` then reports
five IoUs, and ``mIoU`` is their mean.
"""
from typing import Dict, Optional, Sequence

from mmseg.datasets import ISPRSDataset, PotsdamDataset
from mmseg.registry import DATASETS

IGNORED_CLASS = 'clutter'
IGNORE_INDEX = 255  # mmseg's ignore value, hard-coded in BaseSegDataset.get_label_map as well


def _without(metainfo: dict, name: str) -> dict:
    """``metainfo`` (classes + palette) with the class ``name`` removed."""
    keep = [i for i, c in enumerate(metainfo['classes']) if c != name]
    if len(keep) == len(metainfo['classes']):
        raise KeyError(f'class {name!r} is not in {metainfo["classes"]}: mmseg changed its '
                       'ISPRS class list; update cmid_mm/downstream/seg_datasets.py')
    return dict(classes=tuple(metainfo['classes'][i] for i in keep),
                palette=[list(metainfo['palette'][i]) for i in keep])


class _ClutterIgnoredMixin:
    """Map the stock dataset's six class ids to five, clutter to the ignore index.

    ``SOURCE_METAINFO`` is the stock six-class metainfo (ids after ``reduce_zero_label``),
    ``METAINFO`` the five kept classes. A ``metainfo=dict(classes=...)`` argument may choose a
    further subset of the five, in any order; mmseg's label map does the rest.
    """
    SOURCE_METAINFO: dict

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence[str]] = None) -> Dict[int, int]:
        """{stock class id: new class id or 255} for ids 0..5 of the stock dataset."""
        classes = tuple(cls.METAINFO['classes'] if new_classes is None else new_classes)
        unknown = [c for c in classes if c not in cls.METAINFO['classes']]
        if unknown:
            raise ValueError(f'{cls.__name__}: classes {unknown} are not among '
                             f'{cls.METAINFO["classes"]} (clutter is always ignored here; train '
                             'it with the stock six-class dataset)')
        return {i: classes.index(c) if c in classes else IGNORE_INDEX
                for i, c in enumerate(cls.SOURCE_METAINFO['classes'])}


@DATASETS.register_module()
class PotsdamNoClutterDataset(_ClutterIgnoredMixin, PotsdamDataset):
    """ISPRS Potsdam, five classes: clutter pixels are set to 255 (ignored in loss and metric).

    Same files and arguments as mmseg's :class:`~mmseg.datasets.PotsdamDataset`
    (``img_dir/{train,val}``, ``ann_dir/{train,val}``, ``.png``, ``reduce_zero_label=True``).
    """
    SOURCE_METAINFO = PotsdamDataset.METAINFO
    METAINFO = _without(PotsdamDataset.METAINFO, IGNORED_CLASS)


@DATASETS.register_module()
class VaihingenNoClutterDataset(_ClutterIgnoredMixin, ISPRSDataset):
    """ISPRS Vaihingen, five classes: clutter pixels are set to 255 (ignored in loss and metric).

    Same files and arguments as mmseg's :class:`~mmseg.datasets.ISPRSDataset`, which mmseg uses
    for Vaihingen.
    """
    SOURCE_METAINFO = ISPRSDataset.METAINFO
    METAINFO = _without(ISPRSDataset.METAINFO, IGNORED_CLASS)
