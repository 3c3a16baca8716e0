"""DIOR (horizontal boxes, 20 classes) as an mmdet dataset.

DIOR (Li et al., ISPRS J. P&RS 2020) ships Pascal-VOC style XML, 800x800 JPEG images split
over two image folders, and split lists. Expected layout (folder names are arguments):

.. code-block:: none

    data/DIOR/
    ├── JPEGImages-trainval/00001.jpg ...       images of the train and val splits
    ├── JPEGImages-test/11726.jpg ...           images of the test split
    ├── Annotations/Horizontal Bounding Boxes/00001.xml ...
    │       (the first DIOR release has the XML files directly in Annotations/:
    │        pass ann_subdir='Annotations')
    └── ImageSets/Main/{train,val,test}.txt     one image id (file stem) per line

Box coordinates follow the VOC convention (1-based, inclusive), as mmdet's ``XMLDataset``
and ``VOCMetric`` expect.
"""
import collections
import logging
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Optional

from mmdet.datasets import XMLDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

# Spelled as in the DIOR XML files (two capitalised names); matching is case-insensitive.
DIOR_CLASSES = ('airplane', 'airport', 'baseballfield', 'basketballcourt', 'bridge', 'chimney',
                'dam', 'Expressway-Service-area', 'Expressway-toll-station', 'golffield',
                'groundtrackfield', 'harbor', 'overpass', 'ship', 'stadium', 'storagetank',
                'tenniscourt', 'trainstation', 'vehicle', 'windmill')
DIOR_PALETTE = [(220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230), (106, 0, 228),
                (0, 60, 100), (0, 80, 100), (0, 0, 70), (0, 0, 192), (250, 170, 30),
                (100, 170, 30), (220, 220, 0), (175, 116, 175), (250, 0, 30), (165, 42, 42),
                (255, 77, 255), (0, 226, 252), (182, 182, 255), (0, 82, 0), (120, 166, 157)]
LAYOUT_HINT = ('expected <data_root>/<img_subdir>/<id>.jpg, <data_root>/<ann_subdir>/<id>.xml '
               'and <data_root>/<ann_file> listing the ids (see cmid_mm/downstream/'
               'det_datasets.py)')


@DATASETS.register_module()
class DIORDataset(XMLDataset):
    """DIOR horizontal-box detection: mmdet's ``XMLDataset`` with DIOR's folders and classes.

    Args:
        img_subdir: image folder under ``data_root``: ``'JPEGImages-trainval'`` for the
            train / val splits, ``'JPEGImages-test'`` for the test split.
        ann_subdir: XML folder under ``data_root``.
        **kwargs: as :class:`mmdet.datasets.XMLDataset` (``data_root``, ``ann_file`` = a
            split list such as ``'ImageSets/Main/train.txt'``, ``pipeline``, ``filter_cfg``,
            ``metainfo``, ...). ``data_prefix`` defaults to ``dict(sub_data_root='')``.

    Object names are matched to ``classes`` case-insensitively; objects of other classes are
    skipped, and their names and counts are logged once as a warning.
    """
    METAINFO = dict(classes=DIOR_CLASSES, palette=DIOR_PALETTE)

    def __init__(self,
                 img_subdir: str = 'JPEGImages-trainval',
                 ann_subdir: str = 'Annotations/Horizontal Bounding Boxes',
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        self._skipped = collections.Counter()
        super().__init__(
            img_subdir=img_subdir,
            ann_subdir=ann_subdir,
            data_prefix=dict(sub_data_root='') if data_prefix is None else data_prefix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse the split list and its XML files, after checking the folder layout."""
        self._check_layout()
        self._skipped.clear()
        data_list = super().load_data_list()
        if self._skipped:
            print_log(f'{type(self).__name__} ({self.ann_file}): skipped objects whose class '
                      f'is not in metainfo classes: {dict(self._skipped)}', logger='current',
                      level=logging.WARNING)
        return data_list

    def _parse_instance_info(self, raw_ann_info: ET.ElementTree,
                             minus_one: bool = True) -> List[dict]:
        """Normalise the spelling of object names, then parse as mmdet's ``XMLDataset``."""
        canonical = {c.lower(): c for c in self._metainfo['classes']}
        for obj in raw_ann_info.getroot().iter('object'):
            name = obj.find('name')
            text = (name.text or '').strip()
            if text.lower() in canonical:
                name.text = canonical[text.lower()]
            else:
                self._skipped[text] += 1
        return super()._parse_instance_info(raw_ann_info, minus_one=minus_one)

    def _check_layout(self) -> None:
        """Raise a FileNotFoundError naming the missing path (split list, XML, image).

        Only for local files; other storage backends are left to mmdet.
        """
        if self.backend_args is not None or '://' in self.ann_file:
            return
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'DIOR split list {self.ann_file!r} does not exist: '
                                    + LAYOUT_HINT)
        with open(self.ann_file) as f:
            first = next((line.strip() for line in f if line.strip()), None)
        if first is None:
            raise ValueError(f'DIOR split list {self.ann_file!r} is empty')
        root = self.sub_data_root
        for kind, sub, ext in (('annotation', self.ann_subdir, '.xml'),
                               ('image', self.img_subdir, '.jpg')):
            path = osp.join(root, sub, first + ext)
            if not osp.isfile(path):
                raise FileNotFoundError(f'DIOR {kind} {path!r} (first id of {self.ann_file!r}) '
                                        f'does not exist: ' + LAYOUT_HINT)
