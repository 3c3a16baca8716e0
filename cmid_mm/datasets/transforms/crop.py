"""Random resized crop that remembers where it cropped (method.md §2.1, §2.6)."""
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.image.geometric import pillow_interp_codes
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS
from PIL import Image

# Images mmcv.imresize hands to each backend unchanged: cv2 resizes up to 4 channels of any
# dtype at once; Pillow only builds uint8 images with 1 (L), 3 (RGB) or 4 (RGBA) channels.
CV2_MAX_CHANNELS = 4
PILLOW_UINT8_CHANNELS = (1, 3, 4)


@TRANSFORMS.register_module()
class RandomResizedCropWithBox(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` that also records the crop box, for any band count.

    The crop is drawn exactly as in :class:`mmpretrain.datasets.RandomResizedCrop` (same
    arguments, same random draws), then resized to ``scale``. In addition it records the crop
    box in the pixels of the image it cropped from, which CMID needs to match the cells of two
    views in source coordinates.

    Images with any number of bands ``(H, W, N)`` (or ``(H, W)``) of dtype uint8, uint16 or
    float32 are supported. mmcv's ``imresize`` only handles what the backend handles (cv2: at
    most 4 channels; Pillow: uint8 with 1, 3 or 4 channels), so other images are resized in
    chunks: cv2 in groups of at most 4 channels, Pillow one band at a time (uint8 bands as
    8-bit images, other dtypes as 32-bit float images, rounded and clipped back to the
    integer dtype's range). Every band is resampled with the same filter, so the result equals
    resizing the bands one by one.

    **No-data.** If ``results`` holds a ``nodata_mask`` (``(H, W)`` bool, True = no data; made
    by ``LoadRSImageFromFile(nodata=...)``), it is cropped with the same box and resized to
    ``scale`` with nearest-neighbour interpolation, so that it stays aligned with ``img``
    (``CMIDMultiView`` flips it with the view). With ``max_nodata_ratio`` set, a crop whose
    share of no-data source pixels exceeds it is drawn again, up to ``nodata_max_tries`` crops
    in all; if none qualifies, the crop with the smallest share is used (the first of equals).
    The redraws come from the same numpy RNG as the first crop, so under ``PerSampleSeed``
    they are a function of (seed, epoch, sample) like every other draw, and a sample without
    no-data pixels (or without ``nodata_mask``) gets exactly the draws it gets without this
    option.

    **Required Keys:** ``img`` (optional ``img_path``, only used in error messages; optional
    ``nodata_mask``).

    **Modified Keys:** ``img`` -> ``(scale_h, scale_w[, N])``, same dtype; ``img_shape``;
    ``nodata_mask`` (if present) -> ``(scale_h, scale_w)`` bool.

    **Added Keys:**

    - ``crop_bbox`` (np.ndarray, float32, ``(4,)``): ``[top, left, height, width]`` of the crop
      in pixels of the input image (before resizing; the crop covers rows
      ``top .. top + height - 1`` and columns ``left .. left + width - 1``).
    - ``crop_src_shape`` (np.ndarray, int64, ``(2,)``): ``[H, W]`` of the input image, pixels.

    Args:
        scale (int | Sequence[int]): Output size ``(h, w)`` in pixels, or one int for a square.
        crop_ratio_range (tuple[float, float]): Crop area range, as fraction of the image area.
        aspect_ratio_range (tuple[float, float]): Crop aspect ratio (width / height) range.
        max_attempts (int): Random draws before falling back to a central crop.
        interpolation (str): 'nearest', 'bilinear', 'bicubic', 'area' or 'lanczos'.
        backend (str): Resize backend, 'cv2' or 'pillow'.
        max_nodata_ratio (float, optional): largest accepted share (0-1) of no-data pixels in
            a crop, judged on ``nodata_mask`` at source resolution. None (default): crops are
            not redrawn.
        nodata_max_tries (int): crops drawn at most per call when ``max_nodata_ratio`` is set.
    """

    def __init__(self, *args, max_nodata_ratio: Optional[float] = None,
                 nodata_max_tries: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if max_nodata_ratio is not None and not 0. <= max_nodata_ratio < 1.:
            raise ValueError(f'RandomResizedCropWithBox: max_nodata_ratio={max_nodata_ratio} '
                             'must be in [0, 1) (or None: no redraw)')
        if not isinstance(nodata_max_tries, int) or nodata_max_tries < 1:
            raise ValueError(f'RandomResizedCropWithBox: nodata_max_tries={nodata_max_tries!r}'
                             ' must be an int >= 1')
        self.max_nodata_ratio = max_nodata_ratio
        self.nodata_max_tries = nodata_max_tries

    def transform(self, results: dict) -> dict:
        """Crop, resize and record the box; see the class docstring for the keys."""
        img = results['img']
        src_h, src_w = img.shape[:2]
        if src_h == 0 or src_w == 0:
            raise ValueError(
                f'RandomResizedCropWithBox got an empty image of size {src_h}x{src_w} from '
                f"{results.get('img_path')!r} (crop size {self.scale}); remove or fix that file.")
        nodata = results.get('nodata_mask')
        if nodata is not None and nodata.shape != (src_h, src_w):
            raise ValueError(
                f"RandomResizedCropWithBox: nodata_mask {nodata.shape} does not match the "
                f"{src_h}x{src_w} image of {results.get('img_path')!r}: a transform before "
                'the crop changed the image size without the mask; crop first.')
        top, left, height, width = self._draw_crop(img, nodata)
        crop = img[top:top + height, left:left + width]
        img = self._resize(crop, (self.scale[1], self.scale[0]))
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        if nodata is not None:
            mask = nodata[top:top + height, left:left + width].astype(np.uint8)
            results['nodata_mask'] = mmcv.imresize(
                mask, (self.scale[1], self.scale[0]), interpolation='nearest',
                backend=self.backend).astype(bool)
        results['crop_bbox'] = np.array([top, left, height, width], np.float32)
        results['crop_src_shape'] = np.array([src_h, src_w], np.int64)
        return results

    def _draw_crop(self, img: np.ndarray,
                   nodata: Optional[np.ndarray]) -> Tuple[int, int, int, int]:
        """``(top, left, height, width)``, redrawn while the crop has too much no-data."""
        box = self.rand_crop_params(img)
        if self.max_nodata_ratio is None or nodata is None or not nodata.any():
            return box
        best, best_ratio = box, self._nodata_ratio(nodata, box)
        for _ in range(self.nodata_max_tries - 1):
            if best_ratio <= self.max_nodata_ratio:
                break
            box = self.rand_crop_params(img)
            ratio = self._nodata_ratio(nodata, box)
            if ratio < best_ratio:
                best, best_ratio = box, ratio
        return best

    @staticmethod
    def _nodata_ratio(nodata: np.ndarray, box: Tuple[int, int, int, int]) -> float:
        top, left, height, width = box
        return float(nodata[top:top + height, left:left + width].mean())

    def _resize(self, img: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
        """Resize ``(h, w[, N])`` to ``size_wh = (W, H)`` pixels with any N and dtype."""
        if img.ndim == 2:
            return self._resize(img[..., None], size_wh)[..., 0]
        n_bands = img.shape[2]
        if self.backend == 'cv2':
            chunks = [self._imresize(img[..., i:i + CV2_MAX_CHANNELS], size_wh)
                      for i in range(0, n_bands, CV2_MAX_CHANNELS)]
            # cv2 drops a single channel axis: restore it before joining the chunks
            return np.concatenate([c.reshape(c.shape[:2] + (-1, )) for c in chunks], axis=2)
        if img.dtype == np.uint8 and n_bands in PILLOW_UINT8_CHANNELS:
            out = self._imresize(img if n_bands > 1 else img[..., 0], size_wh)
            return out.reshape(out.shape[:2] + (n_bands, ))
        return np.stack([self._pillow_band(img[..., i], size_wh) for i in range(n_bands)],
                        axis=2)

    def _imresize(self, img: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
        return mmcv.imresize(
            img, size_wh, interpolation=self.interpolation, backend=self.backend)

    def _pillow_band(self, band: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
        """Resize one ``(h, w)`` band with Pillow, keeping its dtype."""
        resample = pillow_interp_codes[self.interpolation]
        if band.dtype == np.uint8:
            return np.asarray(Image.fromarray(band).resize(size_wh, resample))
        out = np.asarray(Image.fromarray(band.astype(np.float32)).resize(size_wh, resample))
        if np.issubdtype(band.dtype, np.integer):
            info = np.iinfo(band.dtype)
            out = np.clip(np.round(out), info.min, info.max)
        return out.astype(band.dtype)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', max_nodata_ratio={self.max_nodata_ratio}, '
                f'nodata_max_tries={self.nodata_max_tries})')
