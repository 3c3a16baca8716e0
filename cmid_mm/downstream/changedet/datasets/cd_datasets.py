"""Binary change-detection datasets in A / B / label folders (LEVIR-CD, CDD).

Layout (file names equal across the three folders, suffixes per dataset)::

    data_root/train/A/0001.png   date 1
    data_root/train/B/0001.png   date 2
    data_root/train/label/0001.png   0 = unchanged, 255 = changed
    (val/ and test/ alike)

Each sample is ``dict(img_path=[A file, B file], seg_map_path=label file, ...)``; the
``MultiImg*`` transforms read both images and :class:`MultiImgLoadAnnotations` turns the
0 / 255 mask into class indices 0 / 1 (``format_seg_map='to_binary'``).
"""
import os.path as osp
from typing import List, Optional

import mmengine
import mmengine.fileio as fileio

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


class BaseCDFolderDataset(BaseSegDataset):
    """Pairs ``img_path_from`` / ``img_path_to`` images and their change mask.

    Args:
        img_suffix (str): suffix of the A and B images, e.g. ``'.png'``.
        seg_map_suffix (str): suffix of the label files.
        format_seg_map (str, optional): ``'to_binary'`` maps label grey values < 128 to 0
            and >= 128 to 1 when the annotations are loaded; ``None`` keeps them.
        data_prefix (dict): folders ``img_path_from`` (date 1), ``img_path_to`` (date 2)
            and, for labelled splits, ``seg_map_path``; relative to ``data_root``.
        ann_file (str): optional list of sample names (one a line, suffix optional);
            without it every ``img_suffix`` file under ``img_path_from`` is a sample.
        Other arguments: see :class:`mmseg.datasets.BaseSegDataset`.
    """

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 format_seg_map: Optional[str] = None,
                 data_prefix: dict = dict(img_path_from='', img_path_to='', seg_map_path=''),
                 **kwargs) -> None:
        if format_seg_map not in (None, 'to_binary'):
            raise ValueError(f'{type(self).__name__}: format_seg_map={format_seg_map!r} is '
                             "not supported; use 'to_binary' or None")
        missing = [k for k in ('img_path_from', 'img_path_to') if k not in data_prefix]
        if missing:
            raise KeyError(
                f'{type(self).__name__}: data_prefix {dict(data_prefix)} lacks {missing}; give '
                "the date folders, e.g. data_prefix=dict(img_path_from='train/A', "
                "img_path_to='train/B', seg_map_path='train/label')")
        self.format_seg_map = format_seg_map
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, data_prefix=data_prefix,
            **kwargs)

    def _sample_names(self, dir_from: str) -> List[str]:
        """Sample names (relative path without suffix) from ``ann_file`` or ``dir_from``."""
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'{type(self).__name__}: ann_file {self.ann_file!r} '
                                        'does not exist')
            names = [line.strip() for line in
                     mmengine.list_from_file(self.ann_file, backend_args=self.backend_args)]
            return [n[:-len(self.img_suffix)] if n.endswith(self.img_suffix) else n
                    for n in names if n]
        if not fileio.isdir(dir_from, backend_args=self.backend_args):
            raise FileNotFoundError(
                f'{type(self).__name__}: image folder {dir_from!r} does not exist; check '
                'data_root and data_prefix.img_path_from')
        files = fileio.list_dir_or_file(dir_from, list_dir=False, suffix=self.img_suffix,
                                        recursive=True, backend_args=self.backend_args)
        return sorted(f[:-len(self.img_suffix)] for f in files)

    def load_data_list(self) -> List[dict]:
        """One dict per sample: ``img_path`` [from, to], ``seg_map_path``, label options."""
        dir_from = self.data_prefix['img_path_from']
        dir_to = self.data_prefix['img_path_to']
        ann_dir = self.data_prefix.get('seg_map_path')
        names = self._sample_names(dir_from)
        if not names:
            raise FileNotFoundError(f'{type(self).__name__}: no {self.img_suffix!r} image '
                                    f'found under {dir_from!r} (ann_file={self.ann_file!r})')
        data_list = []
        for name in names:
            paths = [osp.join(dir_from, name + self.img_suffix),
                     osp.join(dir_to, name + self.img_suffix)]
            info = dict(img_path=paths)
            if ann_dir is not None:
                info['seg_map_path'] = osp.join(ann_dir, name + self.seg_map_suffix)
                paths = paths + [info['seg_map_path']]
            absent = [p for p in paths if not fileio.exists(p, backend_args=self.backend_args)]
            if absent:
                raise FileNotFoundError(f'{type(self).__name__}: sample {name!r} is incomplete, '
                                        f'missing {absent}')
            info.update(label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                        format_seg_map=self.format_seg_map, seg_fields=[])
            data_list.append(info)
        return data_list


@DATASETS.register_module()
class LEVIR_CD_Dataset(BaseCDFolderDataset):  # noqa: N801  (open-cd's name)
    """LEVIR-CD (Chen & Shi 2020): 1024x1024 px RGB PNG pairs at 0.5 m, building change.

    ``train`` / ``val`` / ``test`` folders of ``A`` / ``B`` / ``label``; masks 0 / 255 are
    loaded as classes 0 ``unchanged`` / 1 ``changed``.
    """

    METAINFO = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 format_seg_map: Optional[str] = 'to_binary',
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         format_seg_map=format_seg_map, **kwargs)


@DATASETS.register_module()
@DATASETS.register_module(name='SVCD_Dataset')  # open-cd's name for the same data
class CDD_Dataset(BaseCDFolderDataset):  # noqa: N801  (open-cd style name)
    """CDD / SVCD (Lebedev et al. 2018): season-varying 256x256 px RGB JPEG pairs.

    ``train`` (10 000) / ``val`` (3 000) / ``test`` (3 000) folders of ``A`` / ``B`` / label
    (``label`` here; the original release calls it ``OUT``: set
    ``data_prefix.seg_map_path``). Masks are JPEG, so 0 / 255 comes with compression noise:
    grey values are thresholded at 128 into 0 ``unchanged`` / 1 ``changed``.
    """

    METAINFO = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.jpg',
                 format_seg_map: Optional[str] = 'to_binary',
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         format_seg_map=format_seg_map, **kwargs)
