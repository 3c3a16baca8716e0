"""Data transforms for image pairs (open-cd's ``MultiImg*`` names) built on mmcv / mmseg.

Between loading and packing, ``results['img']`` is a **list** of the two dates' images
(``(H, W, C)`` numpy arrays, date 1 first) and ``results['img_path']`` the list of their
files. Every geometric transform draws its random parameters once, from date 1 and the
label, and applies the same crop / flip / resize to both images and to every map in
``results['seg_fields']``, so pixels stay aligned across dates and label.
"""
from typing import List, Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile

from mmseg.datasets.transforms import (LoadAnnotations, PackSegInputs, RandomCrop,
                                       RandomFlip, Resize)
from mmseg.registry import TRANSFORMS


def _images(results: dict, who: str) -> List[np.ndarray]:
    imgs = results['img']
    if not isinstance(imgs, (list, tuple)) or len(imgs) < 2:
        raise TypeError(f'{who}: results["img"] must be the list of images of both dates '
                        '(load them with MultiImgLoadImageFromFile), got '
                        f'{type(imgs).__name__}')
    return list(imgs)


@TRANSFORMS.register_module()
class MultiImgLoadImageFromFile(LoadImageFromFile):
    """Load the images of all dates listed in ``results['img_path']``.

    Required keys: ``img_path`` (list of file names, date 1 first).
    Added keys: ``img`` (list of ``(H, W, 3)`` uint8 BGR arrays, or float32 with
    ``to_float32``), ``img_shape``, ``ori_shape`` (``(H, W)``, pixels).
    Arguments are those of :class:`mmcv.transforms.LoadImageFromFile`; a single-channel
    file is replicated to 3 channels with the default ``color_type='color'``.
    """

    def transform(self, results: dict) -> Optional[dict]:
        paths = results['img_path']
        if isinstance(paths, str) or len(paths) < 2:
            raise TypeError('MultiImgLoadImageFromFile: results["img_path"] must list the '
                            f'files of both dates, got {paths!r}; use a change-detection '
                            'dataset (LEVIR_CD_Dataset, CDD_Dataset)')
        imgs = []
        for path in paths:
            one = super().transform(dict(img_path=path))
            if one is None:  # ignore_empty=True and an unreadable file
                return None
            imgs.append(one['img'])
        shapes = [img.shape for img in imgs]
        if len(set(shapes)) != 1:
            raise ValueError(f'MultiImgLoadImageFromFile: the dates have different shapes '
                             f'{shapes} ({paths}); co-registered pairs of equal size are needed')
        results['img'] = imgs
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = imgs[0].shape[:2]
        return results


@TRANSFORMS.register_module()
class MultiImgLoadAnnotations(LoadAnnotations):
    """mmseg's label loading, plus binarising change masks stored as 0 / 255.

    When the dataset sets ``format_seg_map='to_binary'`` (LEVIR-CD, CDD), grey values below
    128 become 0 (unchanged) and the others 1 (changed); this also cleans the JPEG noise of
    CDD's masks. Added keys: ``gt_seg_map`` ``(H, W)`` uint8, ``seg_fields``.
    Arguments: see :class:`mmseg.datasets.transforms.LoadAnnotations`.
    """

    def _load_seg_map(self, results: dict) -> None:
        super()._load_seg_map(results)
        fmt = results.get('format_seg_map')
        if fmt is None:
            return
        if fmt != 'to_binary':
            raise ValueError(f'MultiImgLoadAnnotations: format_seg_map={fmt!r} is not '
                             "supported; use 'to_binary' or None")
        results['gt_seg_map'] = (results['gt_seg_map'] >= 128).astype(np.uint8)


@TRANSFORMS.register_module()
class MultiImgRandomCrop(RandomCrop):
    """mmseg :class:`RandomCrop` with one window for both dates and the label.

    The window (``crop_size`` ``(h, w)`` pixels) is drawn on date 1; with
    ``cat_max_ratio < 1`` it is redrawn (up to 10 times) while a single class covers more
    than that fraction of the labelled pixels. Modified keys: ``img`` (both), ``img_shape``,
    ``seg_fields`` maps.
    """

    def transform(self, results: dict) -> dict:
        imgs = _images(results, 'MultiImgRandomCrop')
        view = dict(img=imgs[0])
        if 'gt_seg_map' in results:
            view['gt_seg_map'] = results['gt_seg_map']
        elif self.cat_max_ratio < 1.:
            raise KeyError('MultiImgRandomCrop: cat_max_ratio < 1 needs the label: put '
                           'MultiImgLoadAnnotations before the crop')
        bbox = self.crop_bbox(view)
        results['img'] = [self.crop(img, bbox) for img in imgs]
        for key in results.get('seg_fields', []):
            results[key] = self.crop(results[key], bbox)
        results['img_shape'] = results['img'][0].shape[:2]
        return results


@TRANSFORMS.register_module()
class MultiImgRandomFlip(RandomFlip):
    """mmseg :class:`RandomFlip` applying the same (or no) flip to both dates and the label.

    ``prob`` / ``direction`` as in mmcv (e.g. ``prob=0.5``, ``direction='horizontal'`` or a
    list of directions). Added keys: ``flip``, ``flip_direction``.
    """

    def _flip(self, results: dict) -> None:
        imgs = _images(results, 'MultiImgRandomFlip')
        results['img'] = imgs[0]
        super()._flip(results)  # date 1, boxes and every seg map
        results['img'] = [results['img']] + [
            mmcv.imflip(img, direction=results['flip_direction']) for img in imgs[1:]]


@TRANSFORMS.register_module()
class MultiImgResize(Resize):
    """mmseg :class:`Resize` applying the same scale to both dates and the label.

    ``scale`` ``(w, h)`` pixels or ``scale_factor``, ``keep_ratio`` as in mmcv. Images are
    interpolated, label maps use nearest neighbour. Modified keys: ``img``, ``img_shape``,
    ``scale``, ``scale_factor``, ``keep_ratio``, ``seg_fields`` maps.
    """

    def transform(self, results: dict) -> dict:
        imgs = _images(results, 'MultiImgResize')
        results['img'] = imgs[0]
        results = super().transform(results)  # picks the scale; date 1 and seg maps
        resized = [results['img']]
        for img in imgs[1:]:
            one = dict(img=img, scale=results['scale'])
            self._resize_img(one)
            resized.append(one['img'])
        results['img'] = resized
        return results


@TRANSFORMS.register_module()
class MultiImgPackSegInputs(PackSegInputs):
    """mmseg :class:`PackSegInputs` after concatenating the dates on the channel axis.

    ``inputs`` becomes one ``(2C, H, W)`` tensor (date 1 in channels ``[0, C)``), which
    :class:`DualInputSegDataPreProcessor` normalises and :class:`SiamEncoderDecoder` splits
    again. ``img_path`` in the metainfo stays the list of both files.
    """

    def transform(self, results: dict) -> dict:
        imgs = _images(results, 'MultiImgPackSegInputs')
        imgs = [img[..., None] if img.ndim == 2 else img for img in imgs]
        results['img'] = np.concatenate(imgs, axis=-1)
        return super().transform(results)
