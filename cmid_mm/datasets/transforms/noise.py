"""Additive Gaussian pixel noise of view B (method.md §2.2), on an 8-bit or a per-band scale."""
from typing import Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS

UINT8_MAX = 255.
DEFAULT_VAR_RANGE = (10., 50.)


def _check_range(name: str, value) -> Tuple[float, float]:
    if len(value) != 2 or not 0. <= value[0] <= value[1]:
        raise ValueError(f'{name} must be (min, max) with 0 <= min <= max, got {value}.')
    return tuple(float(v) for v in value)


@TRANSFORMS.register_module()
class RandomGaussianNoise(BaseTransform):
    """With probability ``prob``, add zero-mean Gaussian noise to every pixel and band.

    One random strength is drawn uniformly per call, from ``var_range`` (8-bit scale, the
    reference's RGB recipe) or from ``std_range`` (relative to each band; any band count,
    e.g. 13-band uint16 / float Sentinel-2):

    **8-bit scale** (``var_range``, the default ``(10, 50)``): the variance is in squared
    0-255 levels.

    - uint8: noise of variance ``var`` is added, the result is rounded and clipped to
      [0, 255].
    - uint16: the variance is scaled by ``(65535 / 255) ** 2`` (the same noise relative to the
      full range), the result is rounded and clipped to [0, 65535]. For data that use only a
      part of the range (Sentinel-2 L1C: mostly 0-10000, cirrus band B10 about 0-30) this is far
      too strong: use ``std_range``.
    - float: the image is taken to be on the 0-255 scale (as ``LoadImageFromFile(to_float32=
      True)`` gives) and ``var`` is used unchanged; the result is not clipped.

    **Per band** (``std_range``): ``r ~ U(*std_range)`` and band ``b`` gets noise of standard
    deviation ``r * s_b``, where ``s_b`` is ``band_std[b]`` (the dataset's per-band std, the
    same numbers as the data preprocessor's ``std``: the noise is then ``r`` standard
    deviations after normalisation, in every band) or, with ``band_std=None``, the std of band
    ``b`` in this image (view). The reference's RGB noise (variance 10-50 with MillionAID's std
    of about 35 levels) is ``std_range=(0.09, 0.2)`` in these terms. Integer images (uint8,
    uint16, int16, ...) are rounded and clipped to their dtype's range, float images are not
    clipped.

    Both modes make the same two draws before the noise (apply?, strength), from numpy's
    global RNG (so ``PerSampleSeed`` makes them reproducible).

    **Required Keys:** ``img`` ``(H, W[, N])``. **Modified Keys:** ``img`` (same shape, dtype).

    Args:
        prob (float): Probability of adding noise, in [0, 1].
        var_range (tuple[float, float], optional): ``(min, max)`` noise variance, squared
            8-bit levels. Default ``(10, 50)`` unless ``std_range`` is given.
        std_range (tuple[float, float], optional): ``(min, max)`` noise std as a fraction of
            each band's std. Exclusive with ``var_range``.
        band_std (Sequence[float], optional): per-band std of the data (one value per band,
            image units); only with ``std_range``. None: each band's std in the image.
    """

    def __init__(self, prob: float = 0.6,
                 var_range: Optional[Tuple[float, float]] = None,
                 std_range: Optional[Tuple[float, float]] = None,
                 band_std: Optional[Sequence[float]] = None) -> None:
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        if var_range is not None and std_range is not None:
            raise ValueError('RandomGaussianNoise: give var_range (8-bit scale) or std_range '
                             '(relative to each band), not both.')
        if band_std is not None and std_range is None:
            raise ValueError('RandomGaussianNoise: band_std is only used with std_range (noise '
                             'std = r * band_std[b], r ~ U(std_range)); set std_range too.')
        if band_std is not None and (len(band_std) == 0 or any(s <= 0 for s in band_std)):
            raise ValueError(f'RandomGaussianNoise: band_std={list(band_std)} needs one value '
                             '> 0 per band.')
        self.prob = prob
        self.std_range = None if std_range is None else _check_range('std_range', std_range)
        self.var_range = None if std_range is not None else _check_range(
            'var_range', DEFAULT_VAR_RANGE if var_range is None else var_range)
        self.band_std = None if band_std is None else np.asarray(band_std, np.float64)

    @cache_randomness
    def _rand_strength(self) -> Optional[float]:
        """The variance (8-bit) or relative std of this call; None: leave the image as is."""
        if np.random.rand() >= self.prob:
            return None
        return np.random.uniform(*(self.var_range or self.std_range))

    def transform(self, results: dict) -> dict:
        """Add the noise to ``results['img']``; see the class docstring."""
        strength = self._rand_strength()
        if strength is None:
            return results
        img = results['img']
        if self.std_range is not None:
            std, limits = self._band_std(img, strength), self._dtype_limits(img.dtype)
        elif img.dtype == np.uint8:
            std, limits = np.sqrt(strength), (0, UINT8_MAX)
        elif img.dtype == np.uint16:
            top = float(np.iinfo(np.uint16).max)
            std, limits = np.sqrt(strength) * top / UINT8_MAX, (0, top)
        elif np.issubdtype(img.dtype, np.floating):
            std, limits = np.sqrt(strength), None
        else:
            raise TypeError(f'RandomGaussianNoise supports uint8, uint16 and float images on '
                            f'the 8-bit scale, got dtype {img.dtype}; convert the image or use '
                            'std_range (relative to each band).')
        noise = np.random.normal(0., 1., img.shape) * std
        noisy = img.astype(np.float32) + noise.astype(np.float32)
        if limits is not None:
            noisy = np.clip(np.round(noisy), *limits)
        results['img'] = noisy.astype(img.dtype)
        return results

    def _band_std(self, img: np.ndarray, r: float) -> np.ndarray:
        """Noise std per band (broadcasts over ``img``): ``r`` x the band's std."""
        bands = 1 if img.ndim == 2 else img.shape[2]
        if self.band_std is None:
            cube = img.reshape(img.shape[0], img.shape[1], -1)
            scale = cube.std(axis=(0, 1), dtype=np.float64)
        elif len(self.band_std) != bands:
            raise ValueError(f'RandomGaussianNoise: band_std has {len(self.band_std)} values but '
                             f'the image has {bands} band(s); give one std per band, in the '
                             'band order of the images.')
        else:
            scale = self.band_std
        return r * (scale[0] if img.ndim == 2 else scale)

    @staticmethod
    def _dtype_limits(dtype: np.dtype) -> Optional[Tuple[float, float]]:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        if np.issubdtype(dtype, np.floating):
            return None
        raise TypeError(f'RandomGaussianNoise: dtype {dtype} is not supported; use integer or '
                        'float images')

    def __repr__(self) -> str:
        strength = (f'var_range={self.var_range}' if self.std_range is None else
                    f'std_range={self.std_range}, band_std='
                    f'{None if self.band_std is None else self.band_std.tolist()}')
        return f'{self.__class__.__name__}(prob={self.prob}, {strength})'
