"""Two augmented views of one image, with their masks and crop geometry (method.md §2)."""
import copy
from typing import List, Sequence, Union

import numpy as np
from mmpretrain.datasets.transforms import MultiView
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CMIDMultiView(MultiView):
    """mmpretrain's ``MultiView`` that also keeps each view's mask, crop box and flip flag.

    Every view starts from a deep copy of the input results, so the views are augmented
    independently. ``img`` becomes the list of the V view images (what ``PackInputs`` and
    ``SelfSupDataPreprocessor`` expect); each key of ``collect_keys`` is stacked over the views
    into one array with a leading view axis:

    - ``mask``: ``(V, h, w)`` uint8 token masks (from :class:`BlockMaskGenerator`).
    - ``crop_bbox``: ``(V, 4)`` float32 ``[top, left, height, width]``, source pixels (from
      :class:`RandomResizedCropWithBox`).
    - ``crop_src_shape``: ``(V, 2)`` int64 ``[H, W]`` of the cropped image, pixels.
    - ``flip``: ``(V,)`` bool, True if mmcv's ``RandomFlip`` flipped the view horizontally
      (missing = not flipped). A vertical or diagonal flip raises an error, because the crop
      geometry only accounts for horizontal flips.

    If the input has a ``nodata_mask`` (``LoadRSImageFromFile(nodata=...)``), each view's mask
    (cropped and resized with the view by :class:`RandomResizedCropWithBox`) is flipped like
    the view (mmcv's ``RandomFlip`` flips only ``img`` and ``gt_*`` keys, and the CMID views
    are cropped before they are flipped), checked against the view's size, and stacked:
    ``nodata_mask`` becomes ``(V, h, w)`` bool, aligned with the view images. Nothing in the
    model reads it; add it to ``PackInputs(algorithm_keys=...)`` to carry it into the data
    samples.

    **Required Keys:** ``img`` (optional ``nodata_mask``). **Modified Keys:** ``img`` (list of
    V ``(H, W, N)`` arrays), ``nodata_mask``. **Added Keys:** the ``collect_keys``.

    Args:
        transforms (list[list[dict | callable]]): One transform list per pipeline.
        num_views (int | list[int]): Views made by each pipeline, e.g. ``[1, 1]`` for CMID's
            views A and B.
        collect_keys (Sequence[str]): Per-view keys to stack.
    """

    def __init__(self,
                 transforms: List[list],
                 num_views: Union[int, List[int]],
                 collect_keys: Sequence[str] = ('mask', 'crop_bbox', 'crop_src_shape',
                                                'flip')) -> None:
        super().__init__(transforms, num_views)
        self.collect_keys = tuple(collect_keys)

    def transform(self, results: dict) -> dict:
        """Run every view pipeline on a copy of ``results`` and stack the outputs."""
        views = [pipeline(copy.deepcopy(results)) for pipeline in self.transforms]
        results['img'] = [view['img'] for view in views]
        for key in self.collect_keys:
            results[key] = np.stack([self._get(view, key, i) for i, view in enumerate(views)])
        if 'nodata_mask' in results:
            results['nodata_mask'] = np.stack(
                [self._view_nodata(view, i) for i, view in enumerate(views)])
        return results

    @classmethod
    def _view_nodata(cls, view: dict, index: int) -> np.ndarray:
        """The view's no-data mask, flipped with the view, as ``(h, w)`` bool."""
        mask = np.asarray(view['nodata_mask'], bool)
        if mask.shape != view['img'].shape[:2]:
            raise ValueError(
                f"view {index}: nodata_mask {mask.shape} does not match the view image "
                f"{view['img'].shape[:2]}: a transform changed the view's size without the "
                'mask; crop with RandomResizedCropWithBox, which crops and resizes it too.')
        return mask[:, ::-1] if cls._get(view, 'flip', index) else mask

    @staticmethod
    def _get(view: dict, key: str, index: int) -> np.ndarray:
        if key == 'flip':
            flipped = bool(view.get('flip', False))
            direction = view.get('flip_direction', 'horizontal')
            if flipped and direction != 'horizontal':
                raise ValueError(f"view {index} was flipped with direction '{direction}'; "
                                 "CMID's crop geometry only supports RandomFlip("
                                 "direction='horizontal').")
            return np.array(flipped)
        if key not in view:
            raise KeyError(f"view {index} has no '{key}': add the transform that makes it to "
                           'that view pipeline, or drop it from collect_keys.')
        return np.asarray(view[key])

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f'\ncollect_keys={self.collect_keys})'
